"""The CLI's shared plumbing: what every command receives (the chosen cluster, the consoles, progress
on many nodes), the parsing of node indexes and durations, and handing the terminal to ssh."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console

from ..cluster import Cluster
from ..errors import UsageError
from ..node import NodeRefs

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    cluster_name: str | None
    verbose: int = 0
    # Piped output (scripts, tests) must not be cut at 80 columns: tables take the width they need.
    out: Console = field(default_factory=lambda: Console(
        highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 10_000))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))

    def cluster(self) -> Cluster:
        name = self.cluster_name
        if name is None and os.environ.get("VCA_CLUSTER") == "":  # an unset variable in a script
            raise UsageError("VCA_CLUSTER is set but empty",
                             "set it to a cluster name, or unset it to use 'default'")
        if name is not None and not name.strip():
            raise UsageError("empty cluster name (-c '')", "give a name, or leave out -c to use 'default'")
        return Cluster(name)

    def say(self, msg: str) -> None:
        self.err.print(f"[dim]vca:[/dim] {msg}")

    @contextlib.contextmanager
    def node_progress(self, what: str, total: int | None = None) -> Iterator[NodeProgress]:
        """Work on many nodes at once: a bar of nodes done on a terminal, each failure said as it comes
        otherwise. Yields ``done(node, error or None)``, callable from any thread; ``done.start(total)``
        sets the number of nodes when it is known only once the work begins."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        live = self.err.is_terminal and not self.verbose
        progress = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("nodes"),
                            TextColumn("{task.fields[failed]}"), TimeElapsedColumn(), console=self.err,
                            transient=True, disable=not live)
        with progress:
            yield NodeProgress(self, progress, progress.add_task(what, total=total, failed=""), live)


@dataclass
class NodeProgress:
    """``App.node_progress``'s handle: call it once per node done."""

    app: App
    progress: Progress
    task: TaskID
    live: bool
    failed: list[str] = field(default_factory=list)

    def start(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def __call__(self, node: str, error: str | None) -> None:
        if error is not None:
            self.failed.append(node)
            if not self.live:
                self.app.say(f"{node}: {error}")
        self.progress.update(self.task, advance=1,
                             failed=f"[red]{len(self.failed)} failed[/red]" if self.failed else "")


def exec_argv(argv: list[str]) -> NoReturn:
    """Replace this process with ``argv`` (ssh to a node): the terminal, signals and exit code are its."""
    sys.stdout.flush()
    os.execvp(argv[0], argv)


pass_app = click.make_pass_decorator(App)


MAX_INDEX = 10**9  # far beyond any cluster; larger numbers are typing errors


# A name, role, host name or instance id (starts with a letter), an IPv4 or an IPv6 address; '1.5', '3-x'
# and '-1' are typos of indexes, not references.
REF = re.compile(r"[A-Za-z][A-Za-z0-9._-]*|\d{1,3}(\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*")
REF_HELP = ("a node index (3), range (2-5), name (<cluster>-3), role (head, dev, worker(s)) or address")


WHERE_META = "vca.where"  # where --where's values wait for parse_indexes (click's context meta)
CAP = re.compile(r"[A-Za-z0-9_]{1,63}")  # as static hosts declare them: an inventory group cap_<name>


def _keep_where(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    caps = [c.strip() for v in values for c in v.split(",") if c.strip()]
    for c in caps:
        if not CAP.fullmatch(c):
            raise click.BadParameter(f"a capability is a name (letters, digits, _), got '{c}'", ctx, param)
    ctx.meta[WHERE_META] = tuple(dict.fromkeys(caps))


def where_option(help: str) -> Callable[[F], F]:
    """``--where CAP`` (repeatable or comma separated), checked; its values are read with ``where()``."""
    return click.option("--where", "-w", multiple=True, metavar="CAP", expose_value=False, callback=_keep_where,
                        help=help)


def where() -> tuple[str, ...]:
    """The capabilities ``--where`` named in the running command (none: ())."""
    found: tuple[str, ...] = click.get_current_context().meta.get(WHERE_META, ())
    return found


def node_option(help: str, metavar: str = "N") -> Callable[[F], F]:
    """``--node/-n`` (repeatable) and ``--where CAP`` for a command that works on some nodes: one
    place, so every such command selects nodes the same way. The command receives ``nodes`` and hands
    it to ``parse_indexes``, which adds the capabilities ``--where`` named."""
    def decorate(fn: F) -> F:
        fn = where_option("Only nodes with capability CAP (static hosts' \"capabilities\"; inventory "
                          "group cap_CAP); repeatable or comma separated: every one is needed. "
                          "With --node: among the nodes named.")(fn)
        return click.option("--node", "-n", "nodes", multiple=True, metavar=metavar, help=help)(fn)
    return decorate


def parse_indexes(values: tuple[str, ...]) -> NodeRefs:
    """--node 1 --node 3,4 --node 5-7 --node head -> ranges (1-1, 3-3, 4-4, 5-7) and refs ('head'),
    in the order given.

    Only the syntax is checked here; Cluster.select checks the ranges against the cluster's nodes
    without expanding them and resolves names, roles and addresses. A reversed range (``1-0``) is
    refused, never read as "every node"."""
    out: list[tuple[int, int]] = []
    refs: list[str] = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            lo, sep, hi = part.partition("-")
            if not lo.isdigit() or (sep and not hi.isdigit()):
                if not REF.fullmatch(part):
                    raise click.UsageError(f"node index must be {REF_HELP}, got '{part}'")
                refs.append(part)
                continue
            first, last = int(lo), int(hi) if sep else int(lo)
            if max(first, last) > MAX_INDEX:
                raise click.UsageError(f"node index too large in '{part}' (at most {MAX_INDEX})")
            if last < first:
                raise click.UsageError(f"node range '{part}' is reversed: write {last}-{first}")
            out.append((first, last))
    ctx = click.get_current_context(silent=True)
    return NodeRefs(out, refs, ctx.meta.get(WHERE_META, ()) if ctx else ())


def single_index(text: str, verb: str) -> int | str:
    """The one node of `connect N`, `logs N`, `attach N`: an index, or a name, role or address that
    Cluster resolves (it refuses one that names several nodes)."""
    part = text.strip()
    if part.isdigit() and int(part) <= MAX_INDEX:
        return int(part)
    if not REF.fullmatch(part):
        raise click.UsageError(f"{verb} takes one node: an index (a number >= 0), a name (<cluster>-N), "
                               f"a role (head, dev) or an address, got '{text}'")
    return part


if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

if TYPE_CHECKING:  # click >= 8.2 types ParamType as a generic; 8.1's cannot be subscripted at run time
    _FloatParam = click.ParamType[float, object]
else:
    _FloatParam = click.ParamType


class Seconds(_FloatParam):
    """A duration in seconds: a positive, finite number (not 0, -5, nan or inf)."""

    name = "seconds"

    def __init__(self, at_least: float = 0.0) -> None:
        self.at_least = at_least

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            seconds = value
        else:
            try:
                seconds = float(str(value))
            except ValueError:
                self.fail(f"must be a positive number of seconds, got '{value}'", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"must be a positive number of seconds, got '{value}'", param, ctx)
        if seconds < self.at_least:
            self.fail(f"must be a positive number of seconds, at least {self.at_least:g}, got '{value}'",
                      param, ctx)
        return seconds


SECONDS = Seconds()
