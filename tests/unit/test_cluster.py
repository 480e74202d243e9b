"""Cluster, the Python API, against a fake provider and a fake SSH layer: what each verb reads, writes,
returns and raises. The real thing runs on lab nodes in tests/e2e/test_api.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import vcloud_ansible
from vcloud_ansible import Cluster, Node, NodeNotFound, RemoteFailed, UsageError, VcaError, providers
from vcloud_ansible import cluster as cluster_mod
from vcloud_ansible.release.inject import JobState
from vcloud_ansible.remote.ssh import ExecResult
from vcloud_ansible.state import ClusterState


class FakeProvider:
    """Nodes in a dict; counts its listings. ``left``: indexes a destroy fails to remove."""

    name = "fake"
    settings = ()  # declares none

    def __init__(self) -> None:
        self.nodes_by_index: dict[int, Node] = {}
        self.listings = 0
        self.left: set[int] = set()

    def check(self) -> None:
        pass

    def create(self, state: ClusterState, count: int, say: object, role: str | None = None) -> list[Node]:
        start = max(self.nodes_by_index, default=-1) + 1
        new = [Node(i, f"{state.name}-{i}", f"10.0.0.{i + 1}", f"10.0.0.{i + 1}", host_key=f"ssh-ed25519 K{i}")
               for i in range(start, start + count)]
        self.nodes_by_index.update({n.index: n for n in new})
        return new

    def nodes(self, state: ClusterState) -> list[Node]:
        self.listings += 1
        return [Node(**{**n.__dict__, "details": {}}) for _, n in sorted(self.nodes_by_index.items())]

    def destroy(self, state: ClusterState, indexes: list[int] | None, say: object) -> list[Node]:
        gone = [n for i, n in self.nodes_by_index.items() if (indexes is None or i in indexes) and i not in self.left]
        for n in gone:
            del self.nodes_by_index[n.index]
        return gone

    def inventory_source(self, state: ClusterState) -> Path | None:
        return None


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeProvider:
    prov = FakeProvider()
    monkeypatch.setitem(providers.REGISTRY, "fake", FakeProvider)
    monkeypatch.setattr(cluster_mod, "get_provider", lambda name: prov)
    monkeypatch.setattr(cluster_mod.sshexec, "wait_ready", lambda state, nodes: None)
    monkeypatch.setattr("vcloud_ansible.membership.push.run_all", lambda *a, **k: [])  # no nodes to reach
    monkeypatch.setattr("vcloud_ansible.membership.push.probe_cpus", lambda state, nodes: {})
    return prov


@pytest.fixture
def ssh_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], str]]:
    """Every fan-out run: (node names, command); each node answers exit 0."""
    calls: list[tuple[list[str], str]] = []

    def run_all(state: ClusterState, nodes: list[Node], command: str, timeout: float | None = None,
                on_done: object = None) -> list[ExecResult]:
        calls.append(([n.name for n in nodes], command))
        return [ExecResult(n, 0, "", "", 0.0) for n in nodes]

    monkeypatch.setattr(cluster_mod.sshexec, "run_all", run_all)
    return calls


def _mtimes(c: Cluster) -> dict[str, int]:
    files = (c.state.inventory_path, c.state.ssh_config_path, c.state.known_hosts)
    return {p.name: p.stat().st_mtime_ns for p in files}


def _age(c: Cluster) -> None:
    """Set the access files an hour back, so that any rewrite shows in their mtimes."""
    for p in (c.state.inventory_path, c.state.ssh_config_path, c.state.known_hosts):
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns - 3600 * 10**9, st.st_mtime_ns - 3600 * 10**9))


def test_the_package_exports_the_api() -> None:
    for name in ("Cluster", "Node", "NodeStatus", "WaitResult", "TeardownResult", "InjectResult", "ExecResult",
                 "VcaError", "UsageError", "RemoteFailed", "ClusterNotFound", "NodeNotFound", "__version__"):
        assert getattr(vcloud_ansible, name) is not None, name
        assert name in vcloud_ansible.__all__
    with pytest.raises(AttributeError):
        vcloud_ansible.nosuch  # noqa: B018


def test_provision_writes_access_files_and_nodes_reads_without_writing(fake: FakeProvider) -> None:
    c = Cluster("c1")
    new = c.provision(3)
    assert [n.index for n in new] == [0, 1, 2]
    assert "Host c1-2" in c.state.ssh_config_path.read_text()
    assert "c1-2" in c.state.inventory_path.read_text()
    assert "c1-2,10.0.0.3 ssh-ed25519 K2" in c.state.known_hosts.read_text()
    _age(c)
    before = _mtimes(c)
    assert [n.index for n in c.nodes()] == [0, 1, 2]
    assert [n.index for n in c.nodes()] == [0, 1, 2]
    assert _mtimes(c) == before  # reading nodes has no side effects


def test_nodes_never_creates_access_files(fake: FakeProvider) -> None:
    c = Cluster("c1")
    c.provision(1)
    for p in (c.state.inventory_path, c.state.ssh_config_path, c.state.known_hosts):
        p.unlink()
    c.nodes()
    c.select([0])
    assert not c.state.ssh_config_path.exists() and not c.state.inventory_path.exists()


def test_refresh_access_and_the_commands_that_hand_files_out(fake: FakeProvider) -> None:
    c = Cluster("c1")
    c.provision(2)
    fake.nodes_by_index[1].address = "10.9.9.9"  # changed underneath (ec2: a stop/start)
    c.nodes()
    assert "10.9.9.9" not in c.state.ssh_config_path.read_text()
    assert "HostName 10.9.9.9" in c.ssh_config()  # vca ssh-config
    fake.nodes_by_index[1].address = "10.8.8.8"
    assert c.inventory_path() == c.state.inventory_path  # vca inventory
    assert "10.8.8.8" in c.state.inventory_path.read_text()
    fake.create(c.state, 1, print)
    assert [n.index for n in c.refresh_access()] == [0, 1, 2]
    assert "Host c1-2" in c.state.ssh_config_path.read_text()


def test_ssh_verbs_rewrite_access_files_only_when_stale(fake: FakeProvider, ssh_calls: list[object]) -> None:
    c = Cluster("c1")
    c.provision(2)
    _age(c)
    before = _mtimes(c)
    assert [r.node.name for r in c.exec("true")] == ["c1-0", "c1-1"]
    c.status()
    assert _mtimes(c) == before  # they match the listing: nothing written
    fake.nodes_by_index[1].address = "10.9.9.9"
    c.exec("true", [1])
    assert "HostName 10.9.9.9" in c.state.ssh_config_path.read_text()  # ssh would have gone to the old one


def test_select_names_missing_nodes(fake: FakeProvider) -> None:
    c = Cluster("c1")
    c.provision(2)
    assert [n.index for n in c.select([1])] == [1]
    with pytest.raises(NodeNotFound, match=r"has no node 5 \(nodes: 0-1\)"):
        c.select([5])


def test_failed_wait_for_ssh_removes_the_new_nodes(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    c = Cluster("c1")
    c.provision(2)

    def unreachable(state: ClusterState, nodes: list[Node]) -> None:
        raise VcaError("nodes not reachable over SSH")

    monkeypatch.setattr(cluster_mod.sshexec, "wait_ready", unreachable)
    with pytest.raises(VcaError, match="not reachable"):
        c.provision(2)
    assert sorted(fake.nodes_by_index) == [0, 1]
    assert "c1-2" not in c.state.ssh_config_path.read_text()  # the access files without the removed nodes


def test_teardown_is_idempotent_and_typed(fake: FakeProvider) -> None:
    c = Cluster("c1")
    c.provision(2)
    result = c.teardown()
    assert result.existed and [n.index for n in result.removed] == [0, 1]
    assert not c.exists()
    again = c.teardown()
    assert not again.existed and again.removed == []


def test_a_teardown_that_left_nodes_keeps_the_cluster_and_its_access_files(fake: FakeProvider) -> None:
    c = Cluster("c1")
    c.provision(3)
    fake.left = {2}
    with pytest.raises(VcaError, match="teardown left 1 node"):
        c.teardown()
    assert c.exists()
    text = c.state.ssh_config_path.read_text()
    assert "Host c1-2" in text and "Host c1-0" not in text


def test_inject_checks_its_options_before_listing_nodes(fake: FakeProvider, tmp_path: Path) -> None:
    c = Cluster("c1")
    c.provision(1)
    fake.listings = 0
    for kwargs, words in (({"procs": 0}, "--procs"), ({"mem": "100"}, "memory limit"),
                          ({"env": {"VCA_ROLE": "x"}}, "reserved"), ({"env": {"N": 3}}, "not text"),
                          ({"grace": -1}, "grace"), ({"nodes": [4]}, "has no node 4")):
        with pytest.raises(UsageError, match=words):
            c.inject(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert fake.listings == 1  # only the unknown node needed the listing


def _status_rows(c: Cluster, jobs: list[str], exits: list[str] | None = None) -> list[cluster_mod.NodeStatus]:
    return [cluster_mod.NodeStatus(Node(i, f"{c.name}-{i}", "a", "a"), "up", 1.0,
                                   JobState(job=j, exit=(exits or [""] * len(jobs))[i]))
            for i, j in enumerate(jobs)]


def test_wait_returns_when_no_job_runs(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    c = Cluster("c1")
    looks = iter([_status_rows(c, ["running", "running"]), _status_rows(c, ["exited", "running"]),
                  _status_rows(c, ["exited", "exited"], ["0", "0"])])
    monkeypatch.setattr(Cluster, "status", lambda self: next(looks))
    seen: list[tuple[int, int]] = []
    result = c.wait(timeout=60, interval=0.01, on_progress=lambda running, total: seen.append((running, total)))
    assert seen == [(2, 2), (1, 2)]
    assert [s.job.label for s in result.nodes if s.job] == ["exited(0)", "exited(0)"]


def test_wait_names_failed_jobs_and_gives_up_after_timeout(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    c = Cluster("c1")
    monkeypatch.setattr(Cluster, "status", lambda self: _status_rows(c, ["exited", "exited"], ["0", "3"]))
    with pytest.raises(RemoteFailed, match=r"not successful on 1 of 2 nodes: c1-1 \(exited\(3\)\)") as exc:
        c.wait(timeout=5, interval=0.01)
    assert exc.value.hosts == ["c1-1"]
    monkeypatch.setattr(Cluster, "status", lambda self: _status_rows(c, ["running"]))
    with pytest.raises(VcaError, match="jobs still running after 0 s on c1-0"):
        c.wait(timeout=0.05, interval=0.01)


def test_stop_holds_the_lock_and_runs_the_agent(fake: FakeProvider, ssh_calls: list[tuple[list[str], str]]
                                                ) -> None:
    c = Cluster("c1")
    c.provision(2)
    results = c.stop(3, [1])
    assert [r.node.name for r in results] == ["c1-1"]
    assert ssh_calls[-1][0] == ["c1-1"] and "stop 3" in ssh_calls[-1][1]


def test_ssh_argv_for_connect_logs_and_attach(fake: FakeProvider) -> None:
    c = Cluster("c1")
    c.provision(1)
    cfg = str(c.state.ssh_config_path)
    assert c.ssh_argv(0) == ["ssh", "-F", cfg, "c1-0"]
    assert c.ssh_argv(0, "nproc") == ["ssh", "-F", cfg, "c1-0", "--", "nproc"]
    logs = c.logs_argv(0, proc=1, tail=5, follow=True)
    assert logs[:6] == ["ssh", "-F", cfg, "-o", "BatchMode=yes", "-T"] and logs[-1].endswith("logs 1 5 1")
    assert c.attach_argv(0, tmux=True)[-1].startswith("tmux attach -t vca-0; ")
    with pytest.raises(NodeNotFound):
        c.logs_argv(3)


def test_the_stored_record_is_not_called_spec(fake: FakeProvider) -> None:
    c = Cluster("c1")
    c.provision(1)
    assert (c.record.name, c.record.provider) == ("c1", "fake")
    assert c.state.record_path.name == "cluster.json"
