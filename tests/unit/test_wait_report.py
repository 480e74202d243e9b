"""What `vca wait` says while it waits (pure: fake nodes, a fake clock)."""

from __future__ import annotations

from vcloud_ansible.cli.waiting import WaitReporter
from vcloud_ansible.cluster import NodeStatus
from vcloud_ansible.node import Node
from vcloud_ansible.release.inject import JobState


def row(name: str, job: str, doing: str = "", log_bytes: int = 0) -> NodeStatus:
    node = Node(name=name, index=int(name[-1]), address="10.0.0.1", private_ip="10.0.0.1", state="running")
    return NodeStatus(node, "up", 10.0, JobState(job=job, job_release="abc", doing=doing, log_bytes=log_bytes))


def test_prints_on_change_only_and_names_a_node_without_progress() -> None:
    said: list[str] = []
    now = [0.0]
    rep = WaitReporter(said.append, every_look=False, clock=lambda: now[0])
    for t in range(0, 70, 2):  # c-1 logs on; c-2 sits in apt-get update
        now[0] = float(t)
        rep([row("c-0", "exited"), row("c-1", "running", "python3 sweep.py", t * 10),
             row("c-2", "running", "apt-get update")])
    assert said == [
        "2 of 3 nodes still running: c-1 running `python3 sweep.py`; c-2 running `apt-get update`",
        "2 of 3 nodes still running: c-1 running `python3 sweep.py`; "
        "c-2 no progress for over 30 s, running `apt-get update`",
        "2 of 3 nodes still running: c-1 running `python3 sweep.py`; "
        "c-2 no progress for over 60 s, running `apt-get update`",
    ]


def test_a_terminal_hears_every_look_and_a_change_of_process_is_progress() -> None:
    said: list[str] = []
    now = [0.0]
    rep = WaitReporter(said.append, every_look=True, clock=lambda: now[0])
    rep([row("c-0", "running", "make")])
    now[0] = 40.0
    rep([row("c-0", "running", "make")])
    now[0] = 80.0
    rep([row("c-0", "running", "cc -c a.c")])
    now[0] = 82.0
    rep([row("c-0", "running")])
    assert said == ["1 of 1 nodes still running: c-0 running `make`",
                    "1 of 1 nodes still running: c-0 no progress for over 30 s, running `make`",
                    "1 of 1 nodes still running: c-0 running `cc -c a.c`",
                    "1 of 1 nodes still running: c-0 running release abc"]
