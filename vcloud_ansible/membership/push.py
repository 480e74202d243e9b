"""The membership push: every live node learns the cluster as it is now, in one ssh session per node,
all nodes at once (no per-pair work from here, so it grows linearly with the cluster at worst).

What a node receives: the node contract (/etc/vca/cluster.json, the /etc/hosts block, /etc/vca/hostfile
with slots = the CPUs each node reported) and node-to-node SSH for the login user: the cluster-internal
key pair (~/.ssh/vca-<cluster>, its public half in authorized_keys), every member's host key by name and
private address (~/.ssh/vca-<cluster>.known_hosts) and a Host block in ~/.ssh/config that uses both with
strict host-key checking. When the node list changed, the running release's ``vca-on-change`` is called
with /etc/vca/cluster.json (see roles/package/files/vca-node). Jobs are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..guard.apply import push_lines as guard_push_lines
from ..node import Node
from ..release.contract import contract_of
from ..release.cpus import load_cpus, save_cpus
from ..release.install import kv, push_script
from ..remote.ssh import ExecResult, run_all
from ..state import ClusterState
from .cache import member_key

PUSH_TIMEOUT = 120.0  # seconds one node may take (a vca-on-change is bounded to 60 s on the node)


@dataclass
class NodePush:
    node: str
    changed: bool = False  # the node's contract files changed
    on_change: str = ""  # exit code of vca-on-change when it ran ("" when not)
    error: str = ""
    cpus: int | None = None  # as the node reported them


@dataclass
class PushResult:
    nodes: dict[str, NodePush] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> dict[str, str]:
        return {h: n.error for h, n in self.nodes.items() if n.error}


def live_nodes(nodes: Sequence[Node]) -> list[Node]:
    return [n for n in nodes if n.state == "running"]


def known_hosts_lines(state: ClusterState, nodes: Sequence[Node]) -> str:
    """Each member's host key (as vca pinned it) by name and by private address."""
    keys: dict[str, str] = {}
    if state.known_hosts.exists():
        for line in state.known_hosts.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and not line.startswith("#"):
                keys.setdefault(parts[0].split(",")[0], f"{parts[1]} {parts[2]}")
    return "".join(f"{n.name},{n.private_ip} {keys[n.name]}\n" for n in nodes if n.name in keys)


def ssh_hosts_block(cluster: str, nodes: Sequence[Node]) -> str:
    """The Host block of ~/.ssh/config on every node (inside the vca markers)."""
    names = " ".join([n.name for n in nodes] + [n.private_ip for n in nodes])
    key = f"~/.ssh/vca-{cluster}"
    return (f"Host {names}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {key}.known_hosts\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n")


def probe_cpus(state: ClusterState, nodes: Sequence[Node]) -> dict[str, int]:
    """CPUs of ``nodes`` (cached: only nodes never asked are asked, one round trip each, at once)."""
    cpus = load_cpus(state)
    ask = [n for n in nodes if n.name not in cpus]
    for r in run_all(state, ask, "nproc 2>/dev/null || getconf _NPROCESSORS_ONLN", timeout=30):
        if r.rc == 0 and r.stdout.strip().isdigit():
            cpus[r.node.name] = int(r.stdout.strip())
    if ask:
        save_cpus(state, cpus, [n.name for n in nodes])
    return cpus


def push(state: ClusterState, every: Sequence[Node], *, hook: str = "changed", timeout: float = PUSH_TIMEOUT,
         on_done: Callable[[ExecResult], None] | None = None) -> PushResult:
    """Give every live node of ``every`` the membership of the live nodes; returns what each said."""
    started = time.monotonic()
    live = live_nodes(every)
    cpus = probe_cpus(state, live)
    contract = contract_of(live, cpus)
    key = member_key(state)
    files = {"cluster": state.name + "\n", "id": key.read_text(),
             "id.pub": key.with_name(key.name + ".pub").read_text(),
             "id.known_hosts": known_hosts_lines(state, live), "ssh-hosts": ssh_hosts_block(state.name, live)}
    script = push_script(contract, files, frozenset({"id"}), hook) + guard_push_lines(state, live)
    result = PushResult()
    for r in run_all(state, live, script, timeout=timeout, on_done=on_done):  # in node order
        result.nodes[r.node.name] = _outcome(r)
    fresh = {r.node: r.cpus for r in result.nodes.values() if r.cpus is not None}
    if fresh and any(cpus.get(k) != v for k, v in fresh.items()):
        save_cpus(state, {**cpus, **fresh}, [n.name for n in live])
    result.seconds = time.monotonic() - started
    return result


def _outcome(r: ExecResult) -> NodePush:
    f = kv(r.stdout)
    out = NodePush(r.node.name, changed=f.get("contract") == "changed", on_change=f.get("on_change", ""))
    if f.get("cpus", "").isdigit():
        out.cpus = int(f["cpus"])
    if r.rc != 0:
        errors = [line[6:] for line in r.stdout.splitlines() if line.startswith("error=")]
        out.error = "; ".join(errors) or r.stderr.strip()[-300:] or f"exit {r.rc}"
    return out
