"""What every command receives: the chosen cluster and the consoles."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import click
from rich.console import Console

from ..cluster import Cluster


@dataclass
class App:
    cluster_name: str | None
    verbose: int = 0
    # Piped output (scripts, tests) must not be cut at 80 columns: tables take the width they need.
    out: Console = field(default_factory=lambda: Console(
        highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 10_000))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))

    def cluster(self) -> Cluster:
        return Cluster(self.cluster_name)

    def say(self, msg: str) -> None:
        self.err.print(f"[dim]vca:[/dim] {msg}")

    @contextlib.contextmanager
    def node_progress(self, what: str, total: int) -> Iterator[Callable[[str, str | None], None]]:
        """Work on many nodes at once: a bar of nodes done on a terminal, each failure said as it comes
        otherwise. Yields ``done(node, error or None)``, callable from any thread."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        failed: list[str] = []
        live = self.err.is_terminal and not self.verbose
        progress = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("nodes"),
                            TextColumn("{task.fields[failed]}"), TimeElapsedColumn(), console=self.err,
                            transient=True, disable=not live)
        with progress:
            task = progress.add_task(what, total=total, failed="")

            def done(node: str, error: str | None) -> None:
                if error is not None:
                    failed.append(node)
                    if not live:
                        self.say(f"{node}: {error}")
                progress.update(task, advance=1, failed=f"[red]{len(failed)} failed[/red]" if failed else "")

            yield done


pass_app = click.make_pass_decorator(App)


def parse_indexes(values: tuple[str, ...]) -> list[int]:
    """--node 1 --node 3,4 --node 5-7 -> [1, 3, 4, 5, 6, 7]"""
    out: list[int] = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            lo, sep, hi = part.partition("-")
            if not lo.isdigit() or (sep and not hi.isdigit()):
                raise click.UsageError(f"node index must be a number >= 0 or a range like 2-5, got '{part}'")
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    return out
