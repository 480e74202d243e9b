"""sshexec.parallel: work on many nodes at once that an interrupt ends at once."""

from __future__ import annotations

import os
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

    interrupted: list[float] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        interrupted.append(time.monotonic())
        raise KeyboardInterrupt

    def interrupt_when_all_started() -> None:  # not a fixed pause: a loaded machine starts them slowly
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if len(started) >= sshexec.MAX_PARALLEL:
                    break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGALRM)

    previous = signal.signal(signal.SIGALRM, interrupt)
    watcher = threading.Thread(target=interrupt_when_all_started, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sshexec.parallel(work, list(range(40)))
    finally:
        watcher.join(35)
        signal.signal(signal.SIGALRM, previous)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert time.monotonic() - interrupted[0] < 5  # the 30 s sleeps were killed, not waited for
    assert len(started) == sshexec.MAX_PARALLEL
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    # the next parallel() runs normally: the interrupt is over
    assert sshexec.parallel(lambda i: sshexec.spawn(["true"]).wait(), [0, 1]) == [0, 0]
