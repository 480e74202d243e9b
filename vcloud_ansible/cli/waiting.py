"""What `vca wait` says while it waits: which nodes still run what, and which make no progress.

On a terminal it speaks after every look; otherwise (a log, CI) only when what it would say changes, so
a long wait leaves a few lines, not one every 2 s. A node makes no progress while its job's log does not
grow and its newest process stays the same; that is said once past each of STALL_STEPS seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..cluster import NodeStatus

STALL_STEPS = (30, 60, 120, 300, 600, 1800, 3600)


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


@dataclass
class WaitReporter:
    say: Callable[[str], None]
    every_look: bool  # a terminal: speak after each look; else only when the message changes
    clock: Callable[[], float]
    _seen: dict[str, tuple[int, str]] = field(default_factory=dict)  # node -> (log bytes, doing)
    _since: dict[str, float] = field(default_factory=dict)  # node -> when that last changed
    _last: str = ""

    def message(self, rows: list[NodeStatus]) -> str:
        now = self.clock()
        running = [s for s in rows if s.job and s.job.job == "running"]
        parts = []
        for s in running:
            assert s.job is not None
            name = s.node.name
            mark = (s.job.log_bytes, s.job.doing)
            if self._seen.get(name) != mark:
                self._seen[name], self._since[name] = mark, now
            what = f"`{s.job.doing}`" if s.job.doing else f"release {s.job.job_release}"
            idle = now - self._since[name]
            step = max((t for t in STALL_STEPS if idle >= t), default=0)
            parts.append(f"{name} no progress for over {_span(step)}, running {what}" if step
                         else f"{name} running {what}")
        return f"{len(running)} of {len(rows)} nodes still running: {'; '.join(parts)}"

    def __call__(self, rows: list[NodeStatus]) -> None:
        text = self.message(rows)
        if self.every_look or text != self._last:
            self.say(text)
        self._last = text
