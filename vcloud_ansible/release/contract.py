"""The node contract: what a launched job sees (VCA_* environment, /etc/vca/cluster.json, the /etc/hosts
block), built here and only here, by both ways a release reaches a node.

Both ways start from the same inputs: every node's inventory variables (``vca_node_index``,
``vca_private_ip``, ``vca_public_address`` or ``ansible_host``, ``vca_role``) and the node's own
contract variables (``vca_scratch`` -> ``VCA_SCRATCH``, ``vca_data_bucket`` -> ``VCA_DATA_BUCKET``).
The Ansible action (playbooks/inject.yml) takes them from hostvars; ``vca inject`` (one ssh session per
node) takes them from the same places Ansible reads them for a vca cluster: the nodes themselves for
the inventory variables, and ``group_vars/all`` and ``host_vars/<node>`` beside the cluster's inventory
(``$VCA_HOME/clusters/<cluster>/``) for the contract variables (``cluster_vars``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError
from ..node import Node, role_for

# Environment variable -> the inventory variable it comes from; unset or empty: not in the environment.
CONTRACT_VARS = {"VCA_SCRATCH": "vca_scratch", "VCA_DATA_BUCKET": "vca_data_bucket"}
# The names Ansible's host_group_vars plugin reads for a group or host (a folder: every file in it).
_VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")


@dataclass(frozen=True)
class Contract:
    """The cluster's node list and the files the node contract makes of it (/etc/vca/cluster.json,
    the /etc/hosts block, /etc/vca/hostfile): built once per inject, the same text for every node.
    ``hostfile`` is "" when a node's CPU count is not known (the node keeps the one it has)."""

    nodes: list[dict[str, Any]]
    cluster_json: str
    hosts: str
    hostfile: str = ""

    @classmethod
    def of(cls, nodes: list[dict[str, Any]], cpus: Mapping[str, int] | None = None) -> Contract:
        """``cpus``: CPUs per node name (the hostfile's slots); the hostfile needs every node's."""
        hostfile = ""
        if cpus is not None and nodes and all(n["name"] in cpus for n in nodes):
            hostfile = "".join(f"{n['name']} slots={cpus[n['name']]}\n" for n in nodes)
        return cls(nodes, json.dumps(nodes, indent=1) + "\n",
                   "".join(f"{n['private_ip']}\t{n['name']}\n" for n in nodes), hostfile)


def node_entry(index: int, name: str, private_ip: str, public_address: str, role: str) -> dict[str, Any]:
    """One node in /etc/vca/cluster.json."""
    return {"index": index, "name": name, "private_ip": private_ip, "public_address": public_address,
            "role": role}


def node_list(hosts: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cluster's node list, in index order, from every host's inventory variables (hosts without
    ``vca_node_index`` are not nodes of the cluster)."""
    nodes = []
    for host, v in hosts.items():
        if "vca_node_index" not in v:
            continue
        index = int(v["vca_node_index"])
        nodes.append(node_entry(index, host, str(v.get("vca_private_ip") or v.get("ansible_host") or host),
                                str(v.get("vca_public_address") or v.get("ansible_host") or ""),
                                str(v.get("vca_role") or role_for(index))))
    return sorted(nodes, key=lambda n: n["index"])


def inventory_vars(node: Node) -> dict[str, Any]:
    """The inventory variables of ``node`` that the contract reads, as vca's inventories give them."""
    return {"vca_node_index": node.index, "vca_private_ip": node.private_ip, "ansible_host": node.address,
            "vca_role": node.role}


def contract_of(nodes: Iterable[Node], cpus: Mapping[str, int] | None = None) -> Contract:
    """The contract of a cluster whose nodes vca lists itself (``vca inject``, the membership push);
    ``cpus``: as for ``Contract.of``."""
    return Contract.of(node_list({n.name: inventory_vars(n) for n in nodes}), cpus)


def contract_env(nodes: list[dict[str, Any]], me: str, release_id: str, cluster: str,
                 host_vars: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The VCA_* environment of the job on node ``me`` (see the node contract in the README);
    ``host_vars``: the node's variables, of which the contract takes ``CONTRACT_VARS``."""
    mine = next((n for n in nodes if n["name"] == me), None)
    if mine is None:
        raise ValueError(f"{me} is not in the cluster's node list (no vca_node_index?)")
    head = next((n for n in nodes if n["role"] == "head"), nodes[0])
    host_vars = host_vars or {}
    return {
        "VCA_CLUSTER": cluster,
        "VCA_NODE_INDEX": str(mine["index"]),
        "VCA_NUM_NODES": str(len(nodes)),
        "VCA_NODE_IPS": "\n".join(n["private_ip"] for n in nodes),
        "VCA_HEAD_IP": head["private_ip"],
        "VCA_ROLE": mine["role"],
        "VCA_PRIVATE_IP": mine["private_ip"],
        "VCA_RELEASE": release_id,
        **{var: str(host_vars[key]) for var, key in CONTRACT_VARS.items() if host_vars.get(key)},
    }


def cluster_vars(inventory_dir: Path, host: str) -> dict[str, Any]:
    """The contract variables of ``host`` as Ansible reads them beside an inventory in ``inventory_dir``:
    ``group_vars/all`` then ``host_vars/<host>`` (each a file ``.yml``, ``.yaml``, ``.json`` or none, or a
    folder of such files in name order), later ones winning. Other variables are ignored."""
    out: dict[str, Any] = {}
    for path in (*_vars_files(inventory_dir / "group_vars", "all"), *_vars_files(inventory_dir / "host_vars", host)):
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read {path}: {str(exc).splitlines()[0]}",
                             "fix or remove it (Ansible reads it too)") from None
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise UsageError(f"{path} is not a mapping of variables", "fix or remove it (Ansible reads it too)")
        out.update({k: doc[k] for k in CONTRACT_VARS.values() if k in doc})
    return out


def _vars_files(folder: Path, name: str) -> list[Path]:
    found: list[Path] = []
    for suffix in _VARS_SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _VARS_SUFFIXES
                            and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
    return found
