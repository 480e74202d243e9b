from __future__ import annotations

from pathlib import Path

import yaml

from vcloud_ansible.node import Node
from vcloud_ansible.remote.access import host_patterns, known_host_pattern, write_access_files
from vcloud_ansible.state import ClusterState


def _nodes() -> list[Node]:
    return [
        Node(index=i, name=f"c-{i}", address=f"10.0.0.{i + 2}", private_ip=f"10.0.0.{i + 2}",
             role="head" if i == 0 else "worker", host_key=f"ssh-ed25519 KEY{i}")
        for i in range(3)
    ]


def test_inventory_groups_and_hostvars(vca_home: Path) -> None:
    st = ClusterState("c")
    st.create("local", {})
    write_access_files(st, _nodes())
    doc = yaml.safe_load(st.inventory_path.read_text())["all"]
    assert list(doc["children"]["head"]["hosts"]) == ["c-0"]
    assert list(doc["children"]["workers"]["hosts"]) == ["c-1", "c-2"]
    h1 = doc["hosts"]["c-1"]
    assert (h1["ansible_host"], h1["vca_node_index"], h1["vca_private_ip"]) == ("10.0.0.3", 1, "10.0.0.3")
    assert doc["vars"]["vca_cluster"] == "c"
    args = doc["vars"]["ansible_ssh_common_args"]
    assert f"UserKnownHostsFile={st.known_hosts}" in args and "StrictHostKeyChecking=yes" in args


def test_known_hosts_follow_live_nodes(vca_home: Path) -> None:
    st = ClusterState("c")
    st.create("local", {})
    nodes = _nodes()
    write_access_files(st, nodes)
    assert st.known_hosts.read_text().splitlines() == [
        f"c-{i},10.0.0.{i + 2} ssh-ed25519 KEY{i}" for i in range(3)
    ]
    # A later refresh without keys (providers that learn them only once) keeps what was recorded,
    # and drops nodes that are gone.
    for n in nodes:
        n.host_key = None
    write_access_files(st, nodes[:2])
    assert len(st.known_hosts.read_text().splitlines()) == 2


def test_ssh_config_entries(vca_home: Path) -> None:
    st = ClusterState("c")
    st.create("local", {})
    write_access_files(st, _nodes())
    text = st.ssh_config_path.read_text()
    # by name or by address (ssh -F <config> 10.0.0.4, scp, rsync): the key is checked under the name
    assert "Host c-2 10.0.0.4\n  HostName 10.0.0.4\n  Port 22\n  User root\n  HostKeyAlias c-2\n" in text
    assert f"IdentityFile {st.key_path}" in text and "StrictHostKeyChecking yes" in text


def test_known_host_pattern_with_port() -> None:
    n = Node(index=0, name="c-0", address="127.0.0.1", private_ip="10.0.0.1", port=2222)
    assert known_host_pattern(n) == "c-0,[127.0.0.1]:2222"


def test_an_address_shared_by_nodes_is_no_pattern() -> None:
    nodes = [Node(index=i, name=f"c-{i}", address="127.0.0.1", private_ip=f"10.0.0.{i}", port=2222 + i)
             for i in range(2)]
    assert host_patterns(nodes[1], nodes) == ["c-1"]
    odd = Node(index=0, name="c-0", address="host*", private_ip="10.0.0.1")
    assert host_patterns(odd, [odd]) == ["c-0"]
    named = Node(index=0, name="c-0", address="ip-10-0-0-1.example", private_ip="10.0.0.1")
    assert host_patterns(named, [named]) == ["c-0", "ip-10-0-0-1.example"]
