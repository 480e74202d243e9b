"""Progress display for a playbook run, driven by ansible-runner's event stream, and the final summary.

``PlaybookProgress.handle`` is given every event of the run (ansible-runner's ``event_handler``). It keeps
per-host outcomes and a few counters; it is called for every event of a large run, so it only updates
numbers. Rendering happens elsewhere: on a terminal a ``rich.live.Live`` status line redraws itself a few
times a second; anywhere else (pipes, CI, tests) nothing animates and only failures, playbook errors and
the final summary table are printed as plain lines.

With ``verbose`` the display steps aside: Ansible's own output is streamed to the console as it comes
(``-v`` and friends included), and the outcomes are still recorded for the caller.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

Event = Mapping[str, Any]

MESSAGE_LIMIT = 200
"""A failure message is one line of at most this many characters."""

SUMMARY_ROWS = 20
"""A summary lists every host up to this many; beyond it, hosts that went fine are folded into one row."""

_DIGITS = re.compile(r"(\d+)")
_SPACES = re.compile(r"\s+")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ERROR_PREFIXES = ("[ERROR]", "ERROR!")
_WARNING_PREFIXES = ("[WARNING]",)


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``node-2`` before ``node-10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(name) if part)


def one_line(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` as a single trimmed line of at most ``limit`` characters."""
    line = _SPACES.sub(" ", str(text)).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


@dataclass
class HostOutcome:
    """What one host went through, with the counts of Ansible's PLAY RECAP (``ok`` includes ``changed``)."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    failed_task: str | None = None
    message: str | None = None
    # Results that tasks hand back to vca under the key ``vca_report`` (e.g. vca_release: sent, job).
    reports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``failed`` | ``unreachable`` | ``changed`` | ``ok``."""
        if self.failed:
            return "failed"
        if self.unreachable:
            return "unreachable"
        return "changed" if self.changed else "ok"

    def note_failure(self, task: str, message: str) -> None:
        """Remember the first task that failed on this host."""
        if self.failed_task is None:
            self.failed_task = task
            self.message = message


def _last_line(value: object) -> str:
    if not isinstance(value, str):
        return ""
    lines = [line for line in value.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _first_failed_item(res: Mapping[str, Any]) -> Mapping[str, Any] | None:
    items = res.get("results")
    if not isinstance(items, list):
        return None
    return next((i for i in items if isinstance(i, Mapping) and i.get("failed")), None)


def failure_message(res: object) -> str:
    """One line saying why a task failed, from the task result (``event_data['res']``)."""
    if not isinstance(res, Mapping):
        return one_line(res) if res else "failed"
    if "censored" in res:
        return one_line(res["censored"])
    item = _first_failed_item(res)
    if item is not None:
        label = item.get("_ansible_item_label", item.get("item"))
        return one_line(f"item {label}: {failure_message(item)}")
    msg = str(res.get("msg") or "").strip().removeprefix("Task failed: ")
    if res.get("failed_when_result") is True:  # the module's own msg may well say all went fine
        msg = f"failed_when condition is true: {msg}" if msg else "failed_when condition is true"
    if "rc" in res and res.get("rc") not in (0, None) and "rc=" not in msg:
        msg = f"{msg} (rc={res['rc']})" if msg else f"exit code {res['rc']}"
    detail = _last_line(res.get("stderr")) or _last_line(res.get("module_stderr"))
    if detail and detail not in msg:
        msg = f"{msg}: {detail}" if msg else detail
    return one_line(msg or "failed")


class _StatusLine:
    """The live status line; rendered by Live's refresh thread, never by the event handler."""

    def __init__(self, progress: PlaybookProgress) -> None:
        self._progress = progress
        self._spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> RenderableType:
        p = self._progress
        total = max(p.total, 1)
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            self._spinner,
            Text(p.title, style="bold"),
            ProgressBar(total=total, completed=min(p.done, total), width=24),
            Text(f"{p.done}/{p.total} hosts"),
            p.counts_text(),
        )
        task = Text(f"  task: {p.task or '…'}", style="dim", overflow="ellipsis", no_wrap=True)
        return Group(grid, task)


class PlaybookProgress:
    """Collects per-host outcomes from events and shows them (see the module docstring).

    Use as a context manager around the run; ``handle`` is the ansible-runner event handler.
    "Hosts done" is the number of hosts that are through the current task (hosts that failed or were
    unreachable are out of the play and count as done); at the end of the run every host is done.
    """

    def __init__(
        self,
        console: Console,
        title: str,
        hosts_expected: list[str] | None = None,
        *,
        verbose: bool = False,
    ) -> None:
        self.console = console
        self.title = title
        self.verbose = verbose
        self.expected = len(hosts_expected) if hosts_expected else 0
        self.hosts: dict[str, HostOutcome] = {}
        self.task = ""
        self.error: str | None = None
        self.finished = False
        self.started = time.monotonic()
        self._ended: float | None = None
        self._task_uuid: object = None
        self._through: set[str] = set()
        self._out: set[str] = set()
        self._totals = {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0}
        self._live: Live | None = None
        self._dispatch: dict[str, Callable[[Mapping[str, Any]], None]] = {
            "playbook_on_task_start": self._on_task_start,
            "playbook_on_handler_task_start": self._on_task_start,
            "runner_on_ok": self._on_ok,
            "runner_on_failed": self._on_failed,
            "runner_on_unreachable": self._on_unreachable,
            "runner_on_skipped": self._on_skipped,
            "playbook_on_stats": self._on_stats,
        }

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """Animate only on a real terminal and when Ansible's own output is not being streamed."""
        return self.console.is_terminal and not self.console.is_dumb_terminal and not self.verbose

    def __enter__(self) -> PlaybookProgress:
        self.started = time.monotonic()
        if self.live:
            self._live = Live(_StatusLine(self), console=self.console, refresh_per_second=8, transient=True)
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._ended is None:
            self._ended = time.monotonic()
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- numbers the display reads -----------------------------------------------------------------

    @property
    def total(self) -> int:
        return max(self.expected, len(self.hosts))

    @property
    def done(self) -> int:
        if self.finished:
            return self.total
        return len(self._through | self._out)

    @property
    def elapsed(self) -> float:
        return (self._ended or time.monotonic()) - self.started

    def counts_text(self) -> Text:
        t = self._totals
        text = Text()
        text.append(f"ok {t['ok']}", style="green")
        text.append("  ")
        text.append(f"changed {t['changed']}", style="yellow")
        text.append("  ")
        text.append(f"failed {t['failed']}", style="red" if t["failed"] else "")
        text.append("  ")
        text.append(f"unreachable {t['unreachable']}", style="red" if t["unreachable"] else "")
        return text

    def outcomes(self) -> dict[str, HostOutcome]:
        """Per-host outcomes, hosts in natural order."""
        return {h: self.hosts[h] for h in sorted(self.hosts, key=natural_key)}

    # -- the event handler -------------------------------------------------------------------------

    def handle(self, event: Event) -> bool:
        """ansible-runner event handler. Returns True so ansible-runner still keeps the event."""
        kind = event.get("event")
        on_event = self._dispatch.get(kind) if isinstance(kind, str) else None
        if on_event is not None:
            on_event(event.get("event_data") or {})
        elif kind == "verbose":
            self._on_output_line(event.get("stdout"))
        if self.verbose:
            self._echo(event.get("stdout"))
        return True

    def _host(self, data: Mapping[str, Any]) -> HostOutcome | None:
        name = data.get("host")
        if not isinstance(name, str):
            return None
        outcome = self.hosts.get(name)
        if outcome is None:
            outcome = self.hosts[name] = HostOutcome(name)
        if data.get("task_uuid") == self._task_uuid:
            self._through.add(name)
        return outcome

    def _on_task_start(self, data: Mapping[str, Any]) -> None:
        self.task = str(data.get("task") or data.get("name") or "")
        self._task_uuid = data.get("task_uuid")
        self._through = set()

    def _on_ok(self, data: Mapping[str, Any]) -> None:
        outcome = self._host(data)
        if outcome is None:
            return
        outcome.ok += 1
        self._totals["ok"] += 1
        res = data.get("res")
        if isinstance(res, Mapping) and res.get("changed"):
            outcome.changed += 1
            self._totals["changed"] += 1
        if isinstance(res, Mapping) and isinstance(res.get("vca_report"), Mapping):
            outcome.reports.append(dict(res["vca_report"]))

    def _on_failed(self, data: Mapping[str, Any]) -> None:
        outcome = self._host(data)
        if outcome is None or data.get("ignore_errors"):
            return
        outcome.failed += 1
        self._totals["failed"] += 1
        self._record_failure(outcome, data)

    def _on_unreachable(self, data: Mapping[str, Any]) -> None:
        outcome = self._host(data)
        if outcome is None:
            return
        outcome.unreachable += 1
        self._totals["unreachable"] += 1
        self._record_failure(outcome, data)

    def _on_skipped(self, data: Mapping[str, Any]) -> None:
        outcome = self._host(data)
        if outcome is not None:
            outcome.skipped += 1

    def _record_failure(self, outcome: HostOutcome, data: Mapping[str, Any]) -> None:
        task = str(data.get("task") or self.task or "?")
        message = failure_message(data.get("res"))
        outcome.note_failure(task, message)
        self._out.add(outcome.host)
        if not self.verbose:
            self.console.print(failure_line(outcome.host, task, message), highlight=False, soft_wrap=True)

    def _on_output_line(self, stdout: object) -> None:
        """Playbook-level errors (syntax, inventory, no such file) come as plain output lines."""
        if not isinstance(stdout, str) or not stdout:
            return
        line = one_line(_ANSI.sub("", stdout))
        if line.startswith(_ERROR_PREFIXES):
            if self.error is None:
                self.error = line
            if not self.verbose:
                self.console.print(Text(f"✗ {line}", style="red"), highlight=False, soft_wrap=True)
        elif line.startswith(_WARNING_PREFIXES) and not self.verbose:
            self.console.print(Text(line, style="yellow"), highlight=False, soft_wrap=True)

    def _on_stats(self, data: Mapping[str, Any]) -> None:
        """The PLAY RECAP is the authority: take its counts, forget failures that were rescued."""
        self.finished = True
        for name in _stats_hosts(data):
            outcome = self.hosts.setdefault(name, HostOutcome(name))
            outcome.ok = _stat(data, "ok", name)
            outcome.changed = _stat(data, "changed", name)
            outcome.failed = _stat(data, "failures", name)
            outcome.unreachable = _stat(data, "dark", name)
            outcome.skipped = _stat(data, "skipped", name)
            if not outcome.failed and not outcome.unreachable:
                outcome.failed_task = outcome.message = None

    def _echo(self, stdout: object) -> None:
        if isinstance(stdout, str) and stdout:
            self.console.print(Text.from_ansi(stdout.replace("\r", "")), soft_wrap=True, highlight=False)

    # -- the end -----------------------------------------------------------------------------------

    def print_summary(self) -> None:
        self.console.print(summary_table(self.outcomes(), self.title, self.elapsed))


_STAT_KEYS = ("processed", "ok", "changed", "failures", "dark", "skipped")


def _stats_hosts(data: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for key in _STAT_KEYS:
        value = data.get(key)
        if isinstance(value, Mapping):
            names.update(str(h) for h in value)
    return names


def _stat(data: Mapping[str, Any], key: str, host: str) -> int:
    value = data.get(key)
    return int(value.get(host, 0)) if isinstance(value, Mapping) else 0


def failure_line(host: str, task: str, message: str) -> Text:
    """``✗ host: task: message``, printed the moment a host fails."""
    text = Text("✗ ", style="bold red")
    text.append(host, style="bold")
    text.append(f": {task}: ", style="red")
    text.append(message)
    return text


_STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold red"}


def _zero_dim(n: int, style: str) -> Text:
    return Text(str(n), style=style if n else "dim")


def summary_table(
    hosts: Mapping[str, HostOutcome], title: str, elapsed: float | None = None
) -> RenderableType:
    """Per-host table: host, status, ok, changed, failed, unreachable, first failure."""
    if not hosts:
        return Text(f"{title}: no hosts ran", style="yellow")
    caption = _caption(hosts, elapsed)
    table = Table(title=f"{title}: {len(hosts)} hosts", title_justify="left", caption=caption)
    table.add_column("host")
    table.add_column("status")
    table.add_column("ok", justify="right")
    table.add_column("changed", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("unreachable", justify="right")
    table.add_column("first failure", overflow="fold")
    ordered = sorted(hosts.values(), key=lambda o: natural_key(o.host))
    shown, folded = _rows_to_show(ordered)
    for o in shown:
        failure = f"{o.failed_task}: {o.message}" if o.failed_task else ""
        table.add_row(
            o.host,
            Text(o.status, style=_STATUS_STYLE[o.status]),
            str(o.ok),
            _zero_dim(o.changed, "yellow"),
            _zero_dim(o.failed, "red"),
            _zero_dim(o.unreachable, "red"),
            failure,
        )
    if folded:
        table.add_row(f"… {len(folded)} more", Text("ok", style="green"), *_folded_counts(folded), "")
    return table


def _rows_to_show(ordered: list[HostOutcome]) -> tuple[list[HostOutcome], list[HostOutcome]]:
    if len(ordered) <= SUMMARY_ROWS:
        return ordered, []
    bad = [o for o in ordered if o.status in ("failed", "unreachable")]
    good = [o for o in ordered if o.status not in ("failed", "unreachable")]
    room = max(SUMMARY_ROWS - len(bad), 0)
    keep = {o.host for o in bad} | {o.host for o in good[:room]}
    return [o for o in ordered if o.host in keep], [o for o in good[room:]]


def _folded_counts(folded: list[HostOutcome]) -> tuple[str, str, str, str]:
    return (str(sum(o.ok for o in folded)), str(sum(o.changed for o in folded)), "0", "0")


def _caption(hosts: Mapping[str, HostOutcome], elapsed: float | None) -> str:
    statuses = [o.status for o in hosts.values()]
    parts = [f"{statuses.count(s)} {s}" for s in ("ok", "changed", "failed", "unreachable") if s in statuses]
    if elapsed is not None:
        parts.append(f"{elapsed:.1f} s")
    return " · ".join(parts)
