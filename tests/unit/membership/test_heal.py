"""Cluster.heal against a fake provider that can replace nodes: what is gone, what is merely stopped,
the new nodes' host keys in the access files, and a replacement whose SSH check fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vcloud_ansible import Cluster, Node, VcaError, providers
from vcloud_ansible import cluster as cluster_mod
from vcloud_ansible.state import ClusterState


class HealableFake:
    name = "fake"
    settings = ()

    def __init__(self) -> None:
        self.by_index = {i: Node(i, f"h-{i}", f"10.0.0.{i + 1}", f"10.0.0.{i + 1}", host_key=f"ssh-ed25519 K{i}",
                                 role="head" if i == 0 else "worker") for i in range(3)}
        self.replaced: list[list[int]] = []

    def check(self) -> None:
        pass

    def create(self, state: ClusterState, count: int, say: Any, role: str | None = None) -> list[Node]:
        raise AssertionError("heal never creates nodes with new indexes")

    def nodes(self, state: ClusterState) -> list[Node]:
        return [Node(**{**n.__dict__, "details": {}}) for _, n in sorted(self.by_index.items())]

    def destroy(self, state: ClusterState, indexes: list[int] | None, say: Any) -> list[Node]:
        raise AssertionError("heal never destroys nodes through destroy()")

    def inventory_source(self, state: ClusterState) -> Path | None:
        return None

    def replace(self, state: ClusterState, gone: list[Node], say: Any, ready: Any = None) -> list[Node]:
        self.replaced.append([n.index for n in gone])
        before = dict(self.by_index)
        new = [Node(n.index, n.name, f"10.0.1.{n.index}", f"10.0.1.{n.index}", role=n.role,
                    host_key=f"ssh-ed25519 NEW{n.index}") for n in gone]
        self.by_index.update({n.index: n for n in new})
        try:
            ready(new)
        except VcaError:  # all or none, as ec2 does
            self.by_index = before
            raise
        return new


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HealableFake:
    prov = HealableFake()
    monkeypatch.setenv("VCA_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(providers.REGISTRY, "fake", HealableFake)
    monkeypatch.setattr(cluster_mod, "get_provider", lambda name: prov)
    monkeypatch.setattr(cluster_mod.sshexec, "wait_ready", lambda state, nodes: None)
    monkeypatch.setattr("vcloud_ansible.membership.push.run_all", lambda *a, **k: [])
    monkeypatch.setattr("vcloud_ansible.membership.push.probe_cpus", lambda state, nodes: {})
    ClusterState("h").create("fake", {})
    return prov


def test_nothing_gone_and_stopped_nodes_are_said(fake: HealableFake) -> None:
    said: list[str] = []
    assert Cluster("h").heal(said.append) == [] and said == [] and fake.replaced == []
    fake.by_index[1].state = "stopped"
    assert Cluster("h").heal(said.append) == []
    assert said == ["node 1 is stopped, not gone: `vca power on` starts it"] and fake.replaced == []


@pytest.mark.parametrize("state", ["terminated", "down", "interrupted"])
def test_gone_nodes_come_back_and_their_new_keys_are_pinned(fake: HealableFake, state: str) -> None:
    fake.by_index[2].state = state
    fake.by_index[1].state = "stopped"  # not gone: left alone
    said: list[str] = []
    new = Cluster("h").heal(said.append)
    assert [(n.index, n.role) for n in new] == [(2, "worker")] and fake.replaced == [[2]]
    assert said[0] == "healing node 2" and "waiting for SSH on 1 node" in said
    c = Cluster("h")
    assert "h-2,10.0.1.2 ssh-ed25519 NEW2" in c.state.known_hosts.read_text()
    assert "HostName 10.0.1.2" in c.state.ssh_config_path.read_text()


def test_a_replacement_without_ssh_leaves_the_node_gone(fake: HealableFake, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.by_index[2].state = "terminated"

    def unreachable(state: ClusterState, nodes: list[Node]) -> None:
        raise VcaError("1 node did not answer SSH within 90 s: h-2")

    monkeypatch.setattr(cluster_mod.sshexec, "wait_ready", unreachable)
    with pytest.raises(VcaError, match="did not answer SSH"):
        Cluster("h").heal()
    assert fake.by_index[2].state == "terminated"
    c = Cluster("h")
    assert "NEW2" not in c.state.known_hosts.read_text() and "10.0.1.2" not in c.state.ssh_config_path.read_text()
