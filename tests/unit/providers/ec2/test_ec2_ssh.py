"""First contact with EC2 nodes: which address SSH uses, and learning host keys while tags appear."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcloud_ansible.errors import ProviderError
from vcloud_ansible.providers.ec2 import ssh as ec2_ssh
from vcloud_ansible.providers.ec2.api import Instance
from vcloud_ansible.providers.ec2.ssh import HostKeys, learn_host_keys, ssh_target
from vcloud_ansible.state import ClusterState


def inst(iid: str = "i-1", state: str = "running", **tags: str) -> Instance:
    return Instance(id=iid, state=state, tags={"vca:index": "0", **{k.replace("_", ":", 1): v
                                                                    for k, v in tags.items()}},
                    private_ip="172.31.0.5", public_ip="54.0.0.5")


def test_ssh_target_prefers_the_tag_then_follows_ssh_via() -> None:
    plain = inst()
    assert ssh_target(plain, "public") == ("54.0.0.5", 22)
    assert ssh_target(plain, "private") == ("172.31.0.5", 22)
    assert ssh_target(plain, "tag") is None
    tagged = inst(vca_ssh_host="10.1.2.3", vca_ssh_port="2222")
    assert tagged.tags["vca:ssh_host"] == "10.1.2.3"
    for via in ("public", "private", "tag"):
        assert ssh_target(tagged, via) == ("10.1.2.3", 2222)
    no_public = Instance(id="i-2", state="running", tags={}, private_ip="172.31.0.6")
    assert ssh_target(no_public, "public") == ("172.31.0.6", 22)
    assert ssh_target(inst(vca_ssh_host="h", vca_ssh_port="nonsense"), "tag") == ("h", 22)


@pytest.fixture
def state(tmp_path: Path) -> ClusterState:
    s = ClusterState("demo", tmp_path)
    s.dir.mkdir(parents=True)
    return s


def test_host_keys_are_learnt_once_the_tag_appears(state: ClusterState, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ec2_ssh, "ROUND_SECONDS", 0.01)
    rounds = [[inst("i-1"), inst("i-2")], [inst("i-1", vca_ssh_host="10.0.0.1"), inst("i-2")],
              [inst("i-1", vca_ssh_host="10.0.0.1"), inst("i-2", vca_ssh_host="10.0.0.2")]]
    scanned: list[str] = []

    def describe() -> list[Instance]:
        return rounds.pop(0) if len(rounds) > 1 else rounds[0]

    def scan(host: str, port: int) -> str | None:
        scanned.append(host)
        return f"ssh-ed25519 KEY{host[-1]}"

    store = HostKeys(state)
    ids, last = learn_host_keys(describe, lambda i: True, "tag", 10, store, lambda _m: None, scan)
    assert ids == {"i-1", "i-2"}
    assert store.load() == {"i-1": "ssh-ed25519 KEY1", "i-2": "ssh-ed25519 KEY2"}
    assert scanned == ["10.0.0.1", "10.0.0.2"]  # never an instance address, each node once
    assert {i.id for i in last} == {"i-1", "i-2"}
    store.keep_only(["i-2"])
    assert store.load() == {"i-2": "ssh-ed25519 KEY2"}


def test_a_node_that_never_answers_times_out_by_name(state: ClusterState,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ec2_ssh, "ROUND_SECONDS", 0.01)
    node = inst("i-9", Name="demo-3")
    with pytest.raises(ProviderError, match=r"1 node did not answer SSH within 0 s: demo-3"):
        learn_host_keys(lambda: [node], lambda i: True, "public", 0.05, HostKeys(state), lambda _m: None,
                        lambda h, p: None)


def test_an_instance_that_ends_while_starting_is_reported(state: ClusterState,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ec2_ssh, "ROUND_SECONDS", 0.01)
    listings = [[inst("i-1", "pending")], []]
    with pytest.raises(ProviderError, match="instances ended while starting: i-1"):
        learn_host_keys(lambda: listings.pop(0), lambda i: True, "public", 5, HostKeys(state),
                        lambda _m: None, lambda h, p: None)


def test_keyscan_picks_the_strongest_key(monkeypatch: pytest.MonkeyPatch) -> None:
    class Done:
        stdout = "# h:22 SSH-2.0\nh ssh-rsa RSAKEY\nh ssh-ed25519 EDKEY\n"

    monkeypatch.setattr(ec2_ssh.subprocess, "run", lambda *a, **k: Done())
    assert ec2_ssh.keyscan("h", 22) == "ssh-ed25519 EDKEY"
