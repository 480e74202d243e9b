"""What a service is: its name, its command (with PIDFILE), where it may run, and how pacemaker keeps
it: an ``ocf:vca:service`` primitive (roles/ha_cluster/files/resource.d/vca/service) plus location
constraints. Also the reading back of ``ServiceInfo`` from the CIB and crm_mon. Pure: no SSH here."""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

from ..errors import UsageError

AGENT = ("ocf", "vca", "service")
PID_DIR = "/run/vca-services"
LOG_DIR = "/var/log/vca-services"
PIDFILE = "PIDFILE"  # the word in a command that vca replaces with the service's PID file
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class ServiceInfo:
    """One service as the cluster sees it now."""

    name: str
    command: list[str]  # as given (PIDFILE not replaced)
    node: str | None  # where it runs now (None: nowhere)
    state: str  # running | starting | stopping | stopped | failed
    failover: bool  # moves to another node when its node fails
    fail_count: int  # failures pacemaker counts, over every node
    since: str | None  # when it last started where it runs (UTC, ISO 8601)
    placement: str = "any"  # the node asked for, or any
    user: str | None = None
    cwd: str | None = None
    where: tuple[str, ...] = ()  # the capabilities its nodes must have (--where)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "command": self.command, "node": self.node, "state": self.state,
                "failover": self.failover, "fail_count": self.fail_count, "since": self.since,
                "placement": self.placement, "user": self.user, "cwd": self.cwd,
                "where": list(self.where)}


def check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise UsageError(f"invalid service name '{name}'",
                         "start with a lowercase letter; then lowercase letters, digits, - and _ (at most 40)")
    return name


def check_command(command: list[str]) -> list[str]:
    if not command or not command[0].strip():
        raise UsageError("a service needs a command", "vca service add web -- python3 -m http.server 8080")
    return list(command)


def pidfile(name: str) -> str:
    return f"{PID_DIR}/{name}.pid"


def logfile(name: str) -> str:
    return f"{LOG_DIR}/{name}.log"


def node_command(name: str, command: list[str]) -> tuple[str, bool]:
    """The command line the agent runs (PIDFILE replaced by the service's PID file), and whether the
    command writes that file itself."""
    own = any(PIDFILE in word for word in command)
    return shlex.join(word.replace(PIDFILE, pidfile(name)) for word in command), own


def _nv(prefix: str, values: dict[str, str]) -> str:
    return "".join(f"<nvpair id={quoteattr(f'{prefix}-{k}')} name={quoteattr(k)} value={quoteattr(v)}/>"
                   for k, v in values.items())


def primitive_xml(name: str, command: list[str], *, placement: str, user: str | None, cwd: str | None,
                  failover: bool, where: Sequence[str] = ()) -> str:
    """The CIB primitive of a service, created stopped (target-role Stopped) so that its constraints
    are in place before it starts anywhere."""
    line, own = node_command(name, command)
    params = {"command": line, "pidfile": pidfile(name), "own_pidfile": "true" if own else "false",
              "logfile": logfile(name), "user": user or "root", "cwd": cwd or "/"}
    meta = {"target-role": "Stopped", "vca-command": json.dumps(command), "vca-placement": placement,
            "vca-failover": "true" if failover else "false", "vca-user": user or "", "vca-cwd": cwd or "",
            "vca-where": ",".join(where)}
    if failover:  # a command that keeps failing on a node moves on after three tries
        meta |= {"migration-threshold": "3", "failure-timeout": "10min"}
    ops = (f'<op id={quoteattr(name + "-monitor")} name="monitor" interval="5s" timeout="20s"/>'
           f'<op id={quoteattr(name + "-start")} name="start" interval="0s" timeout="30s"/>'
           f'<op id={quoteattr(name + "-stop")} name="stop" interval="0s" timeout="30s"/>')
    return (f'<primitive id={quoteattr(name)} class="{AGENT[0]}" provider="{AGENT[1]}" type="{AGENT[2]}">'
            f'<instance_attributes id={quoteattr(name + "-params")}>{_nv(name + "-params", params)}'
            f'</instance_attributes><meta_attributes id={quoteattr(name + "-meta")}>'
            f'{_nv(name + "-meta", meta)}</meta_attributes><operations>{ops}</operations></primitive>')


def prefer_id(name: str) -> str:
    return f"vca-{name}-node"


def pin_id(name: str) -> str:
    return f"vca-{name}-pin"


def prefer_xml(name: str, node: str) -> str:
    """Run on ``node`` whenever it is up (INFINITY wins over stickiness: it comes back there)."""
    return (f'<rsc_location id={quoteattr(prefer_id(name))} rsc={quoteattr(name)} node={quoteattr(node)} '
            'score="INFINITY"/>')


def pin_xml(name: str, node: str) -> str:
    """Never anywhere but ``node`` (--no-failover): when that node fails the service stays stopped."""
    rule = pin_id(name) + "-rule"
    return (f'<rsc_location id={quoteattr(pin_id(name))} rsc={quoteattr(name)}>'
            f'<rule id={quoteattr(rule)} score="-INFINITY"><expression id={quoteattr(rule + "-expr")} '
            f'attribute="#uname" operation="ne" value={quoteattr(node)}/></rule></rsc_location>')


def where_id(name: str) -> str:
    return f"vca-{name}-where"


def where_xml(name: str, nodes: Sequence[str]) -> str:
    """Never on a node outside ``nodes`` (those with the capabilities of ``--where``)."""
    rule = where_id(name) + "-rule"
    exprs = "".join(f'<expression id={quoteattr(f"{rule}-{i}")} attribute="#uname" operation="ne" '
                    f'value={quoteattr(n)}/>' for i, n in enumerate(nodes))
    return (f'<rsc_location id={quoteattr(where_id(name))} rsc={quoteattr(name)}>'
            f'<rule id={quoteattr(rule)} score="-INFINITY" boolean-op="and">{exprs}</rule></rsc_location>')


def parse(cib_xml: str, mon_xml: str) -> list[ServiceInfo]:
    """Every vca service of the CIB (``cibadmin -Q``) with where and how it runs (``crm_mon --output-as=xml``)."""
    cib = ET.fromstring(cib_xml)
    mon = ET.fromstring(mon_xml) if mon_xml.strip() else ET.Element("crm_mon")
    running: dict[str, tuple[str | None, str]] = {}
    for r in mon.iter("resource"):
        rid = r.get("id") or ""
        where = next((n.get("name") for n in r.findall("node")), None)
        role = r.get("role") or "Stopped"
        active = r.get("active") == "true" or int(r.get("nodes_running_on") or 0) > 0
        if r.get("failed") == "true":
            state = "failed"
        elif role in ("Started", "Starting"):
            state = "running" if role == "Started" else "starting"
        else:  # being stopped (role Stopping, or still active on a node) is not stopped yet
            state = "stopping" if active else "stopped"
        running[rid] = (where, state)
    fails: dict[str, int] = {}
    starts: dict[tuple[str, str], int] = {}
    for ns in cib.iter("node_state"):
        uname = ns.get("uname") or ""
        for nv in ns.iter("nvpair"):
            key = nv.get("name") or ""
            if key.startswith("fail-count-"):
                rid = key[len("fail-count-"):].split("#", 1)[0]
                value = nv.get("value") or "0"
                fails[rid] = fails.get(rid, 0) + (1_000_000 if value == "INFINITY" else int(value or 0))
        for res in ns.iter("lrm_resource"):
            for op in res.iter("lrm_rsc_op"):
                if op.get("operation") == "start" and op.get("rc-code") == "0":
                    at = int(op.get("last-rc-change") or 0)
                    key2 = (res.get("id") or "", uname)
                    starts[key2] = max(starts.get(key2, 0), at)
    out = []
    resources = cib.find("./configuration/resources")
    for p in resources.iter("primitive") if resources is not None else []:
        if (p.get("class"), p.get("provider"), p.get("type")) != AGENT:
            continue
        rid = p.get("id") or ""
        meta = {nv.get("name"): nv.get("value") or "" for m in p.findall("meta_attributes")
                for nv in m.iter("nvpair")}
        params = {nv.get("name"): nv.get("value") or "" for a in p.findall("instance_attributes")
                  for nv in a.iter("nvpair")}
        try:
            command = list(json.loads(meta.get("vca-command") or "[]"))
        except ValueError:
            command = shlex.split(params.get("command", ""))
        where, state = running.get(rid, (None, "stopped"))
        node = where if state != "stopped" else None
        at = starts.get((rid, node or ""), 0)
        since = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds") if node and at else None
        out.append(ServiceInfo(
            name=rid, command=command, node=node, state=state,
            failover=meta.get("vca-failover", "true") != "false",
            fail_count=fails.get(rid, 0), since=since, placement=meta.get("vca-placement") or "any",
            where=tuple(c for c in (meta.get("vca-where") or "").split(",") if c),
            user=meta.get("vca-user") or None, cwd=meta.get("vca-cwd") or None,
        ))
    return sorted(out, key=lambda s: s.name)


def resource_ids(resources_xml: str) -> set[str]:
    """Every id of ``cibadmin -Q -o resources`` (services, remote nodes, fence devices, groups)."""
    root = ET.fromstring(resources_xml)
    return {e.get("id") or "" for e in root.iter() if e.tag in ("primitive", "group", "clone", "bundle")}
