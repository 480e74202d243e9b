"""Node roles: the role new nodes get, at most one head, and the inventory groups by role."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vcloud_ansible.errors import UsageError
from vcloud_ansible.lab.registry import LabNode
from vcloud_ansible.node import Node, check_role, for_new_nodes
from vcloud_ansible.providers.local import LocalProvider
from vcloud_ansible.remote.access import write_access_files
from vcloud_ansible.state import ClusterState


def _node(index: int, role: str) -> Node:
    return Node(index=index, name=f"c-{index}", address=f"10.0.0.{index + 2}", private_ip=f"10.0.0.{index + 2}",
                role=role)


def test_check_role() -> None:
    for role in (None, "head", "worker", "dev"):
        check_role(role)
    with pytest.raises(UsageError) as info:
        check_role("boss")
    assert info.value.one_line() == "unknown node role 'boss': --role takes one of head, worker, dev"
    assert info.value.exit_code == 2


def test_role_of_new_nodes() -> None:
    head = [_node(0, "head"), _node(1, "worker")]
    assert for_new_nodes("c", None, 3, []) is None  # the provider's rule: node 0 head, others worker
    assert for_new_nodes("c", None, 2, [_node(1, "worker")]) is None
    assert for_new_nodes("c", None, 2, head) == "worker"  # never a second head, even at a free index 0
    assert for_new_nodes("c", "dev", 4, head) == "dev"
    assert for_new_nodes("c", "head", 1, [_node(0, "worker")]) == "head"
    assert for_new_nodes("c", "head", 1, []) == "head"
    assert for_new_nodes("c", "head", 0, head) == "head"  # --total N on a cluster of N: nothing added


@pytest.mark.parametrize(("role", "count", "existing", "message"), [
    ("head", 1, [_node(0, "head")], "cluster 'c' already has a head (c-0); a cluster has at most one"),
    ("head", 2, [], "--role head would add 2 heads; a cluster has at most one"),
    ("boss", 1, [], "unknown node role 'boss'"),
])
def test_second_head_refused(role: str, count: int, existing: list[Node], message: str) -> None:
    with pytest.raises(UsageError) as info:
        for_new_nodes("c", role, count, existing)
    assert info.value.message == message


def test_inventory_groups_follow_roles(vca_home: Path) -> None:
    st = ClusterState("c")
    st.create("local", {})
    write_access_files(st, [_node(0, "worker"), _node(1, "head"), _node(2, "dev"), _node(3, "worker")])
    doc = yaml.safe_load(st.inventory_path.read_text())["all"]
    groups = {g: list(v["hosts"] or {}) for g, v in doc["children"].items()}
    assert groups == {"head": ["c-1"], "workers": ["c-0", "c-3"], "dev": ["c-2"], "role_head": ["c-1"],
                      "role_worker": ["c-0", "c-3"], "role_dev": ["c-2"]}
    assert doc["hosts"]["c-2"]["vca_role"] == "dev"


def test_lab_keeps_the_role_and_reads_old_entries() -> None:
    fields = dict(cluster="c", index=3, name="c-3", ip="10.0.0.5", netns="vca-c-3", veth="vh0", dir="/x",
                  owner="/h", created=0.0)
    assert LocalProvider._node(LabNode(**fields, role="dev"), running=True).role == "dev"
    assert LocalProvider._node(LabNode(**fields), running=True).role == "worker"  # written before roles
    assert LocalProvider._node(LabNode(**{**fields, "index": 0}), running=True).role == "head"
