"""Following an array (JobArray.follow / retry) against a fake provider, bucket and inject: how many
nodes run at once, what is started again, what is removed. The lab run is tests/e2e/test_jobs.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vcloud_ansible.jobs import array as array_mod
from vcloud_ansible.jobs.array import JobArray
from vcloud_ansible.jobs.spec import JobRow
from vcloud_ansible.jobs.store import JobObjects
from vcloud_ansible.node import Node


class World:
    """Nodes, the bucket and the jobs' behaviour. Each look (``jobs()``) moves time one step: a job whose
    node has been up for ``steps`` looks ends with its exit code (result + manifest, node powers off),
    unless its node is ``killed``."""

    def __init__(self, codes: dict[str, list[int]], steps: int = 1) -> None:
        self.codes = codes  # job -> exit code per attempt
        self.steps = steps
        self.nodes: dict[int, Node] = {}
        self.age: dict[int, int] = {}
        self.objects: dict[str, JobObjects] = {n: JobObjects() for n in codes}
        self.next_index = 0
        self.most_alive = 0
        self.deleted: list[str] = []
        self.killed: set[str] = set()  # jobs whose next node dies without a word

    # provider
    name = "local"

    def create(self, _state: Any, count: int, _say: Any, _role: str | None = None) -> list[Node]:
        out = []
        for _ in range(count):
            i = self.next_index
            self.next_index += 1
            self.nodes[i] = Node(index=i, name=f"arr-{i}", address="10.0.0.1", private_ip="10.0.0.1",
                                 role="worker", state="running", details={"created": 0.0})
            self.age[i] = 0
            out.append(self.nodes[i])
        self.most_alive = max(self.most_alive, sum(n.state == "running" for n in self.nodes.values()))
        return out

    def nodes_of(self, _state: Any) -> list[Node]:
        return sorted(self.nodes.values(), key=lambda n: n.index)

    def destroy(self, _state: Any, indexes: list[int] | None, _say: Any) -> list[Node]:
        gone = [self.nodes.pop(i) for i in list(self.nodes) if indexes is None or i in indexes]
        return gone

    # bucket
    bucket = "b"

    def jobs(self, names: list[str]) -> dict[str, JobObjects]:
        for job, o in self.objects.items():
            if not o.launches:
                continue
            attempt = max(o.launches)
            node = next((n for n in self.nodes.values() if n.name == o.launches[attempt]["node"]), None)
            if node is None or node.state != "running" or (o.result or {}).get("attempt") == attempt:
                continue
            self.age[node.index] += 1
            if job in self.killed:
                self.killed.discard(job)
                self.nodes.pop(node.index)
            elif self.age[node.index] >= self.steps:
                code = self.codes[job][min(attempt, len(self.codes[job])) - 1]
                o.result = {"attempt": attempt, "exit_code": code}
                o.manifest = {"attempt": attempt}
                node.state = "down"
        return {n: self.objects[n] for n in names}

    def write_launch(self, job: str, attempt: int, doc: dict[str, Any]) -> None:
        self.objects[job].launches[attempt] = doc

    def presign(self, job: str, seconds: int) -> dict[str, Any]:
        return {"post": {}, "list_url": "", "prefix": f"arr/{job}/"}

    def delete_job_outputs(self, job: str) -> None:
        self.deleted.append(job)
        self.objects[job].result = self.objects[job].manifest = None


class FakeProvider:
    def __init__(self, world: World) -> None:
        self.name = "local"
        self.create = world.create
        self.nodes = world.nodes_of
        self.destroy = world.destroy


@pytest.fixture
def make(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    def build(codes: dict[str, list[int]], max_parallel: int, retries: int = 0, retry_on_exit: list[int] | None = None,
              steps: int = 1) -> tuple[JobArray, World]:
        world = World(codes, steps)
        rows = [JobRow(index=i, line=i + 2, instance_type="t3.micro", command="true", name=n).to_json()
                for i, n in enumerate(codes)]
        arr = JobArray("arr", tmp_path / "home", bucket="b")
        arr._doc = {"provider": "local", "rows": rows, "max_parallel": max_parallel, "retries": retries,
                    "retry_on_exit": retry_on_exit or [], "lifetime": 60}
        arr.state.dir.mkdir(parents=True)
        arr.state.record_path.write_text('{"name": "arr", "provider": "local", "settings": {}}')
        monkeypatch.setattr(arr, "store", lambda: world)
        monkeypatch.setattr(array_mod, "get_provider", lambda _name: FakeProvider(world))
        monkeypatch.setattr(array_mod.sshexec, "wait_ready", lambda *_a, **_k: None)
        monkeypatch.setattr(array_mod.access, "write_access_files", lambda *_a, **_k: None)

        class Res:
            ok = True
            rc = 0

        monkeypatch.setattr(array_mod.sshexec, "run_one", lambda *_a, **_k: Res())

        monkeypatch.setattr("vcloud_ansible.release.inject.inject", lambda *_a, **_k: Res())
        return arr, world

    return build


def labels(arr: JobArray) -> dict[str, str]:
    return {j.name: j.label for j in arr.status().jobs}


def test_never_more_than_max_parallel_and_run_returns_once_all_started(make: Any) -> None:
    arr, world = make({n: [0] for n in "abcde"}, max_parallel=2, steps=2)
    st = arr.follow(until="started", poll=0)
    assert world.most_alive == 2
    assert all(world.objects[n].launches for n in "abcde")  # every job started
    assert not st.finished  # the last ones still run: run returns before they end
    st = arr.follow(until="finished", poll=0)
    assert st.counts == {"done(0)": 5} and world.nodes == {}  # ended nodes removed
    assert world.most_alive == 2


def test_lost_job_started_again_within_retries(make: Any) -> None:
    arr, world = make({"a": [0], "b": [0]}, max_parallel=2, retries=1)
    world.killed = {"b"}
    st = arr.follow(poll=0)
    assert st.counts == {"done(0)": 2}
    assert sorted(world.objects["b"].launches) == [1, 2] and sorted(world.objects["a"].launches) == [1]


def test_lost_without_retries_stays_lost_and_follow_ends(make: Any) -> None:
    arr, world = make({"a": [0], "b": [0]}, max_parallel=1)
    world.killed = {"a"}
    st = arr.follow(poll=0)
    assert st.counts == {"lost": 1, "done(0)": 1} and world.nodes == {}
    # `retry` starts it again past the limit, and only it
    assert arr.retry(poll=0) == ["a"]
    assert sorted(world.objects["a"].launches) == [1, 2] and sorted(world.objects["b"].launches) == [1]
    assert arr.follow(poll=0).counts == {"done(0)": 2}


def test_failed_started_again_only_for_listed_codes(make: Any) -> None:
    arr, world = make({"a": [75, 0], "b": [3, 0]}, max_parallel=2, retries=1, retry_on_exit=[75])
    st = arr.follow(poll=0)
    assert {j.name: j.label for j in st.jobs} == {"a": "done(0)", "b": "failed(3)"}
    assert world.deleted == ["a"]  # the failed attempt's outputs went before the new attempt
    assert arr.retry(failed=True, poll=0) == ["b"]
    assert labels(arr)["b"] in ("setting up", "done(0)")


def test_orphan_node_removed(make: Any) -> None:
    arr, world = make({"a": [0]}, max_parallel=1, steps=3)
    world.create(None, 1, None)  # a node no job was started on (an interrupted run), made long ago
    st = arr.follow(poll=0, timeout=3)
    assert st.counts == {"done(0)": 1} and world.nodes == {}
