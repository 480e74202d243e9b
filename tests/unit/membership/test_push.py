"""The membership push's pieces: hostfile, known_hosts by name and private address, the ssh Host
block, the node script (the private key written 0600, the hook flag), the CPU cache."""

from __future__ import annotations

from pathlib import Path

from vcloud_ansible.membership import cache, push
from vcloud_ansible.node import Node
from vcloud_ansible.release import cpus
from vcloud_ansible.release.contract import contract_of
from vcloud_ansible.release.install import push_script
from vcloud_ansible.state import ClusterState


def _nodes() -> list[Node]:
    return [Node(i, f"c-{i}", f"192.0.2.{i + 1}", f"10.9.0.{i + 1}") for i in range(3)]


def test_hostfile_needs_every_nodes_cpus() -> None:
    nodes = _nodes()
    assert contract_of(nodes, {"c-0": 2, "c-1": 4, "c-2": 1}).hostfile == "c-0 slots=2\nc-1 slots=4\nc-2 slots=1\n"
    assert contract_of(nodes, {"c-0": 2}).hostfile == ""  # a node not known: the nodes keep theirs
    assert contract_of(nodes).hostfile == ""


def test_known_hosts_by_name_and_private_address(tmp_path: Path) -> None:
    state = ClusterState("c", tmp_path)
    state.dir.mkdir(parents=True)
    state.known_hosts.write_text("c-0,192.0.2.1 ssh-ed25519 AAA0\nc-2,192.0.2.3 ssh-ed25519 AAA2\n")
    assert push.known_hosts_lines(state, _nodes()) == ("c-0,10.9.0.1 ssh-ed25519 AAA0\n"
                                                       "c-2,10.9.0.3 ssh-ed25519 AAA2\n")
    block = push.ssh_hosts_block("c", _nodes())
    assert block.startswith("Host c-0 c-1 c-2 10.9.0.1 10.9.0.2 10.9.0.3\n")
    assert "StrictHostKeyChecking yes" in block and "IdentityFile ~/.ssh/vca-c\n" in block


def test_push_script_writes_the_key_private_and_flags_the_hook() -> None:
    script = push_script(contract_of(_nodes(), {"c-0": 1, "c-1": 1, "c-2": 1}), {"id": "SECRET\n", "id.pub": "P\n"},
                         frozenset({"id"}), "changed")
    assert '(umask 077; cat > "$T/id")' in script and '(cat > "$T/id.pub")' in script
    assert 'cat > "$T/hostfile"' in script and "echo changed > \"$T/on-change\"" in script
    assert script.rstrip().endswith('"$V/bin/vca-node" contract "$T"')


def test_cpus_cache_keeps_live_nodes_and_key_is_private(tmp_path: Path) -> None:
    state = ClusterState("c", tmp_path)
    state.dir.mkdir(parents=True)
    cpus.save_cpus(state, {"c-0": 2, "c-9": 8}, ["c-0", "c-1"])
    assert cpus.load_cpus(state) == {"c-0": 2}
    key = cache.member_key(state)
    assert key.stat().st_mode & 0o777 == 0o600 and key.with_name(key.name + ".pub").exists()
    assert cache.member_key(state).read_text() == key.read_text()  # made once
