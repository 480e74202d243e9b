"""`vca service`: add, list, move, remove and the logs of services, through one full member of the
HA cluster (pacemaker's own tools over SSH: cibadmin, crm_resource, crm_mon). Every input is checked
before anything is sent; every wait is bounded."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping, Sequence

from ..errors import RemoteFailed, UsageError, VcaError
from ..node import Node, with_capabilities
from ..remote import ssh as sshexec
from ..setup import ha_membership as membership
from ..state import ClusterState
from . import spec
from .spec import ServiceInfo

Say = Callable[[str], None]
_SPLIT = "<!-- vca: crm_mon -->"
_NO_TOOLS = 97  # the node has no pacemaker tools (not set up yet): ask the next one
WAIT = 90.0  # seconds a start, stop or move may take


class HaCluster:
    """The HA cluster of one vca cluster: its nodes, and commands run on the first full member that answers."""

    def __init__(self, state: ClusterState, setup: Mapping[str, Sequence[str]], nodes: Sequence[Node]) -> None:
        if not membership.named(setup):
            raise UsageError(f"cluster '{state.name}' has no HA cluster",
                             f"set one up with `vca -c {state.name} setup --add ha_cluster`")
        self.state = state
        self.nodes = membership.ha_nodes(setup, nodes)
        self.live = [n for n in self.nodes if n.state == "running"]
        if not self.live:
            raise VcaError(f"no node of the HA cluster of '{state.name}' runs", "see `vca status`")

    def run(self, command: str, timeout: float = 60.0) -> str:
        """``command`` (a shell script) on the first live member with pacemaker's tools; its stdout."""
        script = f"command -v cibadmin >/dev/null 2>&1 || exit {_NO_TOOLS}\n{command}"
        tried: list[str] = []
        for node in self.live:
            r = sshexec.run_one(self.state, node, script, timeout=timeout)
            if r.rc == 0:
                return r.stdout
            if r.rc == _NO_TOOLS or (r.rc == 255 and not r.reached) or r.rc == -1:
                tried.append(node.name)
                continue
            raise RemoteFailed(f"pacemaker on {node.name} refused: {(r.stderr or r.stdout).strip()[-300:]}",
                               [node.name])
        raise RemoteFailed(f"no HA node answered ({', '.join(tried)})", tried,
                           f"see `vca -c {self.state.name} status`; `vca setup` sets the HA cluster up again")

    def services(self) -> list[ServiceInfo]:
        out = self.run(f"cibadmin -Q; echo '{_SPLIT}'; crm_mon -1 --output-as=xml 2>/dev/null || true")
        cib, _, mon = out.partition(_SPLIT)
        return spec.parse(cib, mon)

    def resource_ids(self) -> set[str]:
        return spec.resource_ids(self.run("cibadmin -Q -o resources"))

    def node_named(self, ref: str) -> Node:
        """The HA node ``ref`` names (index, name or address)."""
        for n in self.nodes:
            if ref in (str(n.index), n.name, n.address, n.private_ip):
                return n
        have = ", ".join(f"{n.index} ({n.name})" for n in self.nodes) or "none"
        raise UsageError(f"cluster '{self.state.name}' has no HA node '{ref}' (HA nodes: {have})",
                         "name a node by index or name, or give --node any")

    def find(self, name: str) -> ServiceInfo:
        for s in self.services():
            if s.name == name:
                return s
        raise UsageError(f"cluster '{self.state.name}' has no service '{name}'", "see `vca service list`")

    def wait_for(self, name: str, ok: Callable[[ServiceInfo | None], bool], what: str,
                 timeout: float = WAIT) -> ServiceInfo | None:
        deadline = time.monotonic() + timeout
        while True:
            info = next((s for s in self.services() if s.name == name), None)
            if ok(info):
                return info
            if info is not None and info.state == "failed":
                raise VcaError(f"service '{name}' failed on {info.node}",
                               f"see `vca service logs {name}`; `vca service remove {name}` takes it away")
            if time.monotonic() >= deadline:
                state = f"{info.state} on {info.node or 'no node'}" if info else "gone"
                raise VcaError(f"service '{name}' not {what} after {timeout:.0f} s (now {state})",
                               f"see `vca service logs {name}` and `vca service list`")
            time.sleep(1.0)


def _cib(*args: str) -> str:
    return shlex.join(["cibadmin", *args])


def _set_target(name: str, role: str) -> str:
    return shlex.join(["crm_resource", "--resource", name, "--meta", "--set-parameter", "target-role",
                       "--parameter-value", role])


def add(ha: HaCluster, name: str, command: list[str], *, node: str = "any", user: str | None = None,
        cwd: str | None = None, failover: bool = True, where: Sequence[str] = (), say: Say) -> ServiceInfo:
    spec.check_name(name)
    command = spec.check_command(command)
    if user is not None and not user.strip():
        raise UsageError("--user needs a user name")
    if cwd is not None and not cwd.startswith("/"):
        raise UsageError(f"--cwd must be an absolute folder on the nodes, got '{cwd}'")
    target = None if node == "any" else ha.node_named(str(node))
    allowed = [n.name for n in with_capabilities(ha.state.name, where, ha.nodes, ha.nodes)] if where else []
    if target is not None and allowed and target.name not in allowed:
        raise UsageError(f"node {target.name} lacks capability {' and '.join(where)}",
                         f"nodes with it: {', '.join(allowed)}")
    if name in {n.name for n in ha.nodes}:
        raise UsageError(f"'{name}' is a node's name", "give the service another name")
    if name in ha.resource_ids():
        raise UsageError(f"cluster '{ha.state.name}' already has a service or resource '{name}'",
                         f"remove it first (`vca service remove {name}`) or pick another name")
    if len(ha.nodes) == 1:
        say(f"warning: the HA cluster of '{ha.state.name}' has one node: service '{name}' cannot fail over "
            "(add nodes with `vca provision N`)")
    elif not failover:
        say(f"service '{name}' will not fail over (--no-failover): it stays stopped while its node is down")
    placement = target.name if target else "any"
    script = [_cib("--create", "-o", "resources", "--xml-text",
                   spec.primitive_xml(name, command, placement=placement, user=user, cwd=cwd, failover=failover,
                                                     where=where))]
    if allowed:  # never on a node without the capabilities, failover included
        script.append(_cib("--create", "-o", "constraints", "--xml-text", spec.where_xml(name, allowed)))
    if target is not None:
        script.append(_cib("--create", "-o", "constraints", "--xml-text", spec.prefer_xml(name, target.name)))
        if not failover:
            script.append(_cib("--create", "-o", "constraints", "--xml-text", spec.pin_xml(name, target.name)))
    script.append(_set_target(name, "Started"))
    ha.run("set -e\n" + "\n".join(script))
    info = ha.wait_for(name, lambda s: s is not None and s.state == "running", "running")
    assert info is not None
    if target is None and not failover and info.node:  # pinned where pacemaker put it
        ha.run(_cib("--create", "-o", "constraints", "--xml-text", spec.pin_xml(name, info.node)))
    return info


def remove(ha: HaCluster, name: str, say: Say) -> None:
    ha.find(name)
    ha.run(_set_target(name, "Stopped"))
    ha.wait_for(name, lambda s: s is None or s.state == "stopped", "stopped")
    ha.run("\n".join([
        *(_cib("--delete", "-o", "constraints", "--xml-text", f'<rsc_location id="{i}"/>') + " || true"
          for i in (spec.prefer_id(name), spec.pin_id(name), spec.where_id(name))),
        _cib("--delete", "-o", "resources", "--xml-text", f'<primitive id="{name}"/>'),
        shlex.join(["crm_resource", "--cleanup", "--resource", name]) + " >/dev/null 2>&1 || true",
    ]))
    left = [r.node.name for r in sshexec.run_all(ha.state, ha.live, f"test -e {shlex.quote(spec.pidfile(name))}",
                                                   timeout=20) if r.rc == 0]
    if left:
        raise RemoteFailed(f"service '{name}' is gone from the cluster but its PID file is still on "
                           f"{', '.join(left)}", left)
    say(f"service '{name}' stopped and removed")


def move(ha: HaCluster, name: str, node: str, say: Say) -> ServiceInfo:
    info = ha.find(name)
    target = ha.node_named(str(node))
    if target.state != "running":
        raise UsageError(f"node {target.name} is {target.state}", "move the service to a node that runs")
    if not all(c in target.capabilities for c in info.where):
        raise UsageError(f"node {target.name} lacks capability {' and '.join(info.where)} that service "
                         f"'{name}' needs", "move it to a node with it")
    script = [
        _cib("--delete", "-o", "constraints", "--xml-text", f'<rsc_location id="{spec.prefer_id(name)}"/>')
        + " || true",
        _cib("--create", "-o", "constraints", "--xml-text", spec.prefer_xml(name, target.name)),
        shlex.join(["crm_resource", "--resource", name, "--meta", "--set-parameter", "vca-placement",
                    "--parameter-value", target.name]),
    ]
    if not info.failover:
        script[1:1] = [_cib("--replace", "-o", "constraints", "--xml-text", spec.pin_xml(name, target.name))]
    ha.run("set -e\n" + "\n".join(script))
    moved = ha.wait_for(name, lambda s: s is not None and s.state == "running" and s.node == target.name,
                        f"running on {target.name}")
    assert moved is not None
    say(f"service '{name}' runs on {target.name}")
    return moved


def logs(ha: HaCluster, name: str, tail: int = 100) -> dict[str, str]:
    """The service's log on each live HA node that has one ({node name: last ``tail`` lines}), the node
    it runs on last."""
    info = ha.find(name)
    path = shlex.quote(spec.logfile(name))
    command = f"test -f {path} && tail -n {int(tail)} {path}"
    out = {r.node.name: r.stdout for r in sshexec.run_all(ha.state, ha.live, command, timeout=20) if r.rc == 0}
    if info.node in out:
        out[info.node] = out.pop(info.node)
    return out
