"""Ctrl-C and SIGTERM during a playbook run: stop Ansible and its workers cleanly, then hand the signal
back to the caller."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any


def _ansible_children() -> list[int]:
    """Our child ``ansible-playbook`` processes (Linux /proc; elsewhere none are found)."""
    me, found = os.getpid(), []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            stat = Path("/proc", entry, "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != me:
                continue
            argv = Path("/proc", entry, "cmdline").read_bytes().split(b"\0")[:2]
        except (OSError, ValueError, IndexError):
            continue
        if any(arg.endswith(b"ansible-playbook") for arg in argv):
            found.append(int(entry))
    return found


class Interrupts:
    """Catch SIGINT/SIGTERM during the run, stop Ansible cleanly, then re-deliver the signal to the caller.

    ansible-runner cancels by SIGKILLing ansible-playbook's process group, which misses Ansible's workers
    (each runs in its own session): their commands and ssh connections would live on. So the signal is
    first passed on to ansible-playbook, which stops its workers and exits; only if it is still there
    after ``GRACE`` seconds does ansible-runner kill it. ansible-runner's own handler, installed when no
    cancel callback is given, would also stay installed for good and swallow every later Ctrl-C.
    """

    GRACE = 5.0
    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._forwarded_at: float | None = None

    def should_cancel(self) -> bool:
        """ansible-runner's cancel callback, polled about once a second."""
        if self.received is None:
            return False
        if self._forwarded_at is None:
            self._forwarded_at = time.monotonic()
            for pid in _ansible_children():
                with contextlib.suppress(OSError):
                    os.kill(pid, self.received)
            return False
        return time.monotonic() - self._forwarded_at > self.GRACE

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in self._SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:  # None: installed outside Python, cannot be restored
                signal.signal(sig, handler)

    def redeliver(self) -> None:
        if self.received is not None:
            signal.raise_signal(self.received)
