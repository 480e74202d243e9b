"""What `vca up` would do to make a cluster match its spec file, read without changing anything: the
steps in the order they run (nodes, setup roles, package, services). `vca up --plan` prints them;
`vca up` runs exactly them and reports them, so the plan and the next run agree, and a cluster that
matches its spec has no step.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..spec import ClusterSpecFile, ServiceSpec
from .role_settings import check_roles
from .services import ServiceHost, service_changes

if TYPE_CHECKING:
    from ..cluster import Cluster

UP_FILE = "up.json"  # in the cluster's folder: the package and environment the last `vca up` injected
ACTIONS = ("create", "add", "remove", "setup", "forget-setup", "inject", "remove-service", "add-service")


@dataclass(frozen=True)
class Step:
    action: str  # one of ACTIONS
    what: str  # one line for people
    detail: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "what": self.what}


@dataclass
class Plan:
    cluster: str
    provider: str
    steps: list[Step]
    # what the steps need to run
    total: int | None = None
    setup: dict[str, list[str]] = field(default_factory=dict)
    package: Path | None = None
    release: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    services_add: list[ServiceSpec] = field(default_factory=list)
    services_remove: list[str] = field(default_factory=list)
    hosts: list[Any] = field(default_factory=list)  # static: the spec's hosts
    settings: dict[str, Any] = field(default_factory=dict)  # the provider's section (ec2: image, region, ...)

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "provider": self.provider, "changed": bool(self.steps),
                "steps": [s.to_json() for s in self.steps]}


def env_digest(env: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]


def spec_setup(spec: ClusterSpecFile) -> dict[str, list[str]]:
    """The spec's setup roles in the form the cluster keeps them (role paths relative to the spec file)."""
    from ..setup import settings as setup_settings

    base = spec.path.parent if spec.path else Path.cwd()
    request = {on: [str(base / r) if setup_settings.is_path(r) and not Path(r).expanduser().is_absolute()
                    and not r.startswith("~") else r for r in roles] for on, roles in spec.setup.items()}
    return setup_settings.merged({}, request)


def make_plan(cluster: Cluster, spec: ClusterSpecFile) -> Plan:
    """The steps that make ``cluster`` match ``spec``; reads the cluster (and its nodes), changes nothing."""
    from ..release.package import prepare
    from ..setup import settings as setup_settings

    exists = cluster.exists()
    record = cluster.record if exists else None
    provider = spec.provider or (record.provider if record else "local")
    if record and record.provider != provider:
        raise UsageError(f"cluster '{cluster.name}' uses provider '{record.provider}', the spec says '{provider}'",
                         "`vca down` first, or give the spec another cluster name")
    plan = Plan(cluster.name, provider, [], setup=spec_setup(spec), env=dict(spec.package_env),
                settings=dict(spec.settings))
    check_roles(plan.setup)  # a role that would fail on every node for want of a setting, refused first
    nodes = cluster.nodes() if exists else []

    # 1. nodes
    if provider == "static":
        from ..providers.static import merge_hosts

        hosts = spec.settings.get("hosts") or []
        if not hosts:
            raise UsageError("a static spec needs hosts", "static: {hosts: [HOST, ...]}")
        wanted = merge_hosts({}, spec.settings)  # the section's user, port and identity fill gaps
        plan.hosts = [h.to_json() for h in wanted]
        have = {(n.address.lower(), n.port): n for n in nodes}
        new = [h for h in wanted if h.key not in have]
        gone = [n for k, n in have.items() if k not in {h.key for h in wanted}]
        if not exists:
            plan.steps.append(Step("create", f"adopt {len(new)} static host{'s' if len(new) != 1 else ''}: "
                                   + ", ".join(h.label for h in new)))
        elif new:
            plan.steps.append(Step("add", "adopt static host" + ("s" if len(new) > 1 else "") + ": "
                                   + ", ".join(h.label for h in new)))
        if gone:
            plan.steps.append(Step("remove", "release static host" + ("s" if len(gone) > 1 else "") + ": "
                                   + ", ".join(n.name for n in gone), {"indexes": [n.index for n in gone]}))
    else:
        total = spec.total_to_provision()
        if total is None:
            raise UsageError(f"{'spec file ' + str(spec.path) if spec.path else 'spec'} gives no node count",
                             "add `nodes: N` (or {head: 1, worker: N})")
        plan.total = total
        have_n = len(nodes)
        if not exists:
            plan.steps.append(Step("create", f"create the cluster: {total} node{'s' if total != 1 else ''} "
                                   f"(provider {provider})"))
        elif total > have_n:
            plan.steps.append(Step("add", f"add {total - have_n} node{'s' if total - have_n != 1 else ''} "
                                   f"({have_n} -> {total})"))
        elif total < have_n:
            plan.steps.append(Step("remove", f"remove {have_n - total} node{'s' if have_n - total != 1 else ''} "
                                   f"({have_n} -> {total}; workers first, highest index first)"))

    # 2. setup roles (a new cluster's nodes get them as they are made)
    current = setup_settings.normalized(record.setup if record else {})
    if exists:
        for on, roles in plan.setup.items():
            for role in roles:
                if role not in current.get(on, []):
                    plan.steps.append(Step("setup", f"apply setup role {role} to {on} nodes", {"role": role, "on": on}))
        for on, roles in current.items():
            for role in roles:
                if role not in plan.setup.get(on, []):
                    plan.steps.append(Step("forget-setup", f"stop naming setup role {role} for {on} nodes "
                                           "(nothing is undone on the nodes)", {"role": role, "on": on}))
    elif any(plan.setup.values()):
        named = "; ".join(f"{on}: {', '.join(r)}" for on, r in plan.setup.items() if r)
        plan.steps.append(Step("setup", f"apply setup roles to the new nodes ({named})"))

    # 3. the package, when it (or its environment) changed
    if spec.package is not None:
        plan.package = spec.package
        cache = cluster.state.dir / "releases" if exists else Path(tempfile.mkdtemp(prefix="vca-up-"))
        plan.release = prepare(spec.package.resolve(), cache).release_id
        last = _last_up(cluster) if exists else {}
        running = {s.job.release for s in cluster.status() if s.job} if exists and nodes else set()
        if (not exists or running != {plan.release} or last.get("release") != plan.release
                or last.get("env") != env_digest(plan.env)):
            plan.steps.append(Step("inject", f"inject {spec.package} (release {plan.release}) on every node"))

    # 4. services: only a cluster whose setup has ha_cluster runs any (a first run adds it before them)
    from ..setup import ha_membership

    if spec.services and not isinstance(cluster, ServiceHost):
        raise UsageError("the spec names services, and this vca has no services yet",
                         "remove the services section")
    if spec.services and not ha_membership.named(plan.setup):
        raise UsageError(f"{spec.path}: services run on the HA cluster, and the spec's setup has no ha_cluster",
                         "add it: setup: {all: [ha_cluster]}")
    has_ha = record is not None and ha_membership.named(record.setup)
    present = list(cluster.services()) if has_ha and isinstance(cluster, ServiceHost) else []
    add, remove = service_changes(spec.services, present)
    plan.services_add, plan.services_remove = add, remove
    plan.steps += [Step("remove-service", f"remove service {n}") for n in remove]
    plan.steps += [Step("add-service", f"add service {s.name} on {s.node}: {' '.join(s.command)}") for s in add]
    return plan


def _last_up(cluster: Cluster) -> dict[str, Any]:
    path = cluster.state.dir / UP_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}
