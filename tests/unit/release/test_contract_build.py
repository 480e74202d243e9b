"""The node contract, built by one module for both inject paths: the node list from inventory variables,
the VCA_* environment with the contract variables, and those variables read where Ansible reads them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import raw_ansible

from vcloud_ansible.errors import UsageError
from vcloud_ansible.node import Node
from vcloud_ansible.release.contract import cluster_vars, contract_env, contract_of, node_entry, node_list
from vcloud_ansible.remote.access import write_access_files
from vcloud_ansible.state import ClusterState


def test_node_list_from_inventory_variables() -> None:
    hosts = {
        "c-1": {"vca_node_index": "1", "ansible_host": "192.0.2.5"},
        "c-0": {"vca_node_index": 0, "vca_private_ip": "10.0.0.2", "ansible_host": "198.51.100.7",
                "vca_public_address": "203.0.113.9", "vca_role": "dev"},
        "localhost": {"ansible_connection": "local"},  # not a node of the cluster
        "c-2": {"vca_node_index": 2},
    }
    assert node_list(hosts) == [node_entry(0, "c-0", "10.0.0.2", "203.0.113.9", "dev"),
                                node_entry(1, "c-1", "192.0.2.5", "192.0.2.5", "worker"),
                                node_entry(2, "c-2", "c-2", "", "worker")]


def test_nodes_vca_lists_give_what_the_inventory_gives() -> None:
    nodes = [Node(1, "c-1", "192.0.2.6", "10.0.0.3"), Node(0, "c-0", "192.0.2.5", "", role="head")]
    assert contract_of(nodes).nodes == [node_entry(0, "c-0", "192.0.2.5", "192.0.2.5", "head"),
                                        node_entry(1, "c-1", "10.0.0.3", "192.0.2.6", "worker")]
    assert contract_of(nodes).hosts == "192.0.2.5\tc-0\n10.0.0.3\tc-1\n"


def test_contract_env_takes_the_contract_variables() -> None:
    nodes = contract_of([Node(0, "c-0", "10.0.0.2", "10.0.0.2", role="head"), Node(1, "c-1", "10.0.0.3", "10.0.0.3")])
    plain = contract_env(nodes.nodes, "c-1", "r1", "c")
    assert "VCA_SCRATCH" not in plain and "VCA_DATA_BUCKET" not in plain
    env = contract_env(nodes.nodes, "c-1", "r1", "c", {"vca_scratch": "/scratch", "vca_data_bucket": "b",
                                                         "other": "x"})
    assert env == {**plain, "VCA_SCRATCH": "/scratch", "VCA_DATA_BUCKET": "b"}
    assert contract_env(nodes.nodes, "c-1", "r1", "c", {"vca_scratch": "", "vca_data_bucket": None}) == plain


def test_cluster_vars_where_ansible_reads_them(tmp_path: Path) -> None:
    assert cluster_vars(tmp_path, "c-1") == {}
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("vca_scratch: /scratch\nvca_data_bucket: data\nx: 1\n")
    (tmp_path / "host_vars" / "c-1").mkdir(parents=True)
    (tmp_path / "host_vars" / "c-1" / "10-scratch.yaml").write_text("vca_scratch: /mnt/fast\n")
    (tmp_path / "host_vars" / "c-1" / ".hidden.yml").write_text("vca_scratch: /hidden\n")
    (tmp_path / "host_vars" / "c-1" / "notes.txt").write_text("not: vars\n")
    (tmp_path / "host_vars" / "c-2.json").write_text('{"vca_data_bucket": "other"}')
    assert cluster_vars(tmp_path, "c-0") == {"vca_scratch": "/scratch", "vca_data_bucket": "data"}
    assert cluster_vars(tmp_path, "c-1") == {"vca_scratch": "/mnt/fast", "vca_data_bucket": "data"}
    assert cluster_vars(tmp_path, "c-2") == {"vca_scratch": "/scratch", "vca_data_bucket": "other"}
    (tmp_path / "host_vars" / "c-3.yml").write_text("- a list\n")
    with pytest.raises(UsageError, match="not a mapping"):
        cluster_vars(tmp_path, "c-3")
    (tmp_path / "host_vars" / "c-4.yml").write_text("vca_scratch: [unclosed\n")
    with pytest.raises(UsageError, match=r"cannot read .*c-4\.yml"):
        cluster_vars(tmp_path, "c-4")


def test_cluster_vars_agree_with_ansible(tmp_path: Path) -> None:
    """What Ansible gives the inject playbook as hostvars, for a vca inventory with group_vars and
    host_vars beside it, is what ``vca inject`` reads."""
    state = ClusterState("c", tmp_path / "home")
    state.dir.mkdir(parents=True)
    nodes = [Node(i, f"c-{i}", f"10.0.0.{i + 2}", f"10.0.0.{i + 2}") for i in range(3)]
    write_access_files(state, nodes)
    (state.dir / "group_vars" / "all").mkdir(parents=True)
    (state.dir / "group_vars" / "all" / "contract.yml").write_text("vca_scratch: /scratch\nvca_data_bucket: d\n")
    (state.dir / "host_vars").mkdir()
    (state.dir / "host_vars" / "c-2.yml").write_text("vca_scratch: /mnt/other\n")
    res = raw_ansible(str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(state.inventory_path),
                      "--list")
    assert res.returncode == 0, res.stderr
    hostvars = json.loads(res.stdout)["_meta"]["hostvars"]
    keys = ("vca_scratch", "vca_data_bucket")
    for n in nodes:
        assert {k: hostvars[n.name][k] for k in keys} == cluster_vars(state.dir, n.name)
    assert cluster_vars(state.dir, "c-2")["vca_scratch"] == "/mnt/other"
