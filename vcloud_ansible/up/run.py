"""`vca up`: run the plan's steps in order (nodes, setup roles, package, services) and report them;
`vca down`: remove everything `up` made (the cluster's nodes, or for static hosts everything vca put
on them, and the cluster's record)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..providers.base import Say
from ..spec import ClusterSpecFile
from ..state import atomic_write
from .plan import UP_FILE, Plan, Step, env_digest, make_plan
from .services import ServiceHost, apply_services

if TYPE_CHECKING:
    from rich.console import Console

    from ..cluster import Cluster


def _quiet(_msg: str) -> None:
    pass


@dataclass
class UpReport:
    cluster: str
    steps: list[Step] = field(default_factory=list)  # what this run did, in order
    seconds: float = 0.0
    planned_only: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "plan": self.planned_only, "changed": self.changed,
                "steps": [s.to_json() for s in self.steps], "seconds": round(self.seconds, 1)}


def up(cluster: Cluster, spec: ClusterSpecFile, *, plan_only: bool = False, say: Say = _quiet,
       console: Console | None = None) -> UpReport:
    """Make ``cluster`` match ``spec``; with ``plan_only``, only say what that takes. Running it again
    changes nothing (its report has no step)."""
    started = time.monotonic()
    plan = make_plan(cluster, spec)
    report = UpReport(cluster.name, planned_only=plan_only)
    if plan_only:
        report.steps = plan.steps
        return report
    for step in plan.steps:
        say(step.what)
        _run(cluster, plan, step, say, console)
        report.steps.append(step)
    report.seconds = time.monotonic() - started
    return report


def _run(cluster: Cluster, plan: Plan, step: Step, say: Say, console: Console | None) -> None:
    if step.action in ("create", "add"):
        if plan.provider == "static":
            cluster.add_hosts(plan.hosts, setup=plan.setup or None, say=say, console=console)
        else:
            cluster.provision(None, plan.provider, say, total=plan.total, settings=plan.settings or None,
                              setup=plan.setup or None, console=console)
    elif step.action == "remove":
        if plan.provider == "static":
            _release_hosts(cluster, step.detail["indexes"], say)
        else:
            assert plan.total is not None
            cluster.resize(plan.total, say=say, console=console)
    elif step.action == "setup":
        if "role" in step.detail:  # the new cluster's nodes got theirs as they were made
            cluster.setup(add=step.detail["role"], on=step.detail["on"], console=console)
    elif step.action == "forget-setup":
        cluster.forget_setup_role(step.detail["role"], step.detail["on"])
    elif step.action == "inject":
        assert plan.package is not None
        # restart: the spec says which release runs, with which environment; a job of another one (or of
        # the same release with other variables) is stopped first
        cluster.inject(plan.package, env=plan.env, restart=True).raise_for_failures()
        atomic_write(cluster.state.dir / UP_FILE, json.dumps({"release": plan.release,
                                                              "env": env_digest(plan.env)}) + "\n")
    elif step.action in ("add-service", "remove-service"):
        assert isinstance(cluster, ServiceHost)
        if step.action == "remove-service":
            apply_services(cluster, [], [n for n in plan.services_remove if step.what.endswith(f" {n}")])
        else:
            apply_services(cluster, [s for s in plan.services_add if step.what.startswith(f"add service {s.name} ")],
                           [])


def _release_hosts(cluster: Cluster, indexes: list[int], say: Say) -> None:
    """Static hosts the spec no longer names: cleaned and released (never powered off); the others get
    the new node list."""
    with cluster.state.lock("up", say):
        cluster.provider.destroy(cluster.state, indexes, say)
        cluster.refresh_access()
        cluster.push_membership(say)


def down(cluster: Cluster, say: Say = _quiet) -> list[str]:
    """Remove everything `vca up` made: every node (static hosts: cleaned, still running) and the
    cluster's record. Returns the names of the nodes removed; [] when there was no cluster."""
    if not cluster.exists():
        return []
    result = cluster.teardown(say)
    return [n.name for n in result.removed]
