"""sshexec.parallel: work on many nodes at once that an interrupt ends at once."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from types import FrameType

import pytest

from vcloud_ansible.remote import ssh as sshexec


def test_results_in_order() -> None:
    assert sshexec.parallel(lambda i: i * i, list(range(50))) == [i * i for i in range(50)]


def test_interrupt_kills_what_runs_and_cancels_the_rest() -> None:
    """40 items on 32 threads: the 32 running `sleep 30`s die, the 8 queued never start."""
    started: list[int] = []
    procs: list[subprocess.Popen[bytes]] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        proc = sshexec.spawn(["sleep", "30"])
        with lock:
            started.append(i)
            procs.append(proc)
        return proc.wait()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 2.0)  # time for all 32 to start
    began = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            sshexec.parallel(work, list(range(40)))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert time.monotonic() - began < 10
    assert len(started) == sshexec.MAX_PARALLEL
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    # the next parallel() runs normally: the interrupt is over
    assert sshexec.parallel(lambda i: sshexec.spawn(["true"]).wait(), [0, 1]) == [0, 0]
