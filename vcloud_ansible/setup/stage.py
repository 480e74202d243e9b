"""Running the setup stage: ``playbooks/setup.yml`` on the nodes whose node role has setup roles.

A node that gets no role is left out of the run; when no node gets one, nothing runs at all (no
playbook, no import of ansible-runner), so a cluster without setup roles pays nothing for the stage.
A failed role raises RemoteFailed naming the hosts and the task; the nodes stay as they are, and
running the stage again (``vca setup``) retries, since roles are idempotent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RemoteFailed
from ..node import Node
from ..providers.base import Say
from ..state import ClusterState
from . import settings

if TYPE_CHECKING:
    from rich.console import Console

    from ..playbook.runner import RunResult

PLAYBOOK = "setup"


@dataclass
class SetupRun:
    """One run of the stage: the nodes it ran on (none: nothing to apply) and how Ansible went."""

    nodes: list[Node] = field(default_factory=list)
    result: RunResult | None = None
    earlier: int = 0  # tasks changed by a run before ``result`` (the other roles, before ha_cluster)

    @property
    def changed(self) -> int:
        """Tasks that changed something, over every node."""
        return self.earlier + (self.result.changed_total if self.result else 0)


def targets(setup: Mapping[str, Sequence[str]], nodes: Sequence[Node]) -> list[Node]:
    """The nodes that get at least one role."""
    return [n for n in nodes if settings.roles_of(setup, n.role)]


def apply(state: ClusterState, inventory: Path, setup: Mapping[str, Sequence[str]], nodes: Sequence[Node], *,
          what: str = "setup", console: Console | None = None, verbose: int = 0,
          every: Sequence[Node] | None = None) -> SetupRun:
    """Apply the ``setup`` roles to ``nodes`` (those of the cluster's ``inventory`` to run on).

    ha_cluster is never applied to part of the HA cluster: the other roles go to ``nodes``, then
    ha_cluster to every live HA node of ``every`` (the cluster's nodes; default ``nodes``) in one run
    (setup/ha_membership.py)."""
    chosen = targets(setup, nodes)
    if not chosen:
        return SetupRun()
    from . import ha_membership as ha

    if ha.named(setup):
        run = apply(state, inventory, ha.without_ha(setup), chosen, what=what, console=console, verbose=verbose)
        every = list(every if every is not None else nodes)
        members = [n for n in ha.ha_nodes(setup, every) if n.state == "running"]
        if not {n.index for n in members} & {c.index for c in chosen}:
            return run
        result = ha.sync(state, inventory, setup, every, what=f"{what}: ha_cluster", console=console,
                         verbose=verbose)
        if result is None:
            return run
        return SetupRun(sorted({n.index: n for n in [*run.nodes, *members]}.values(), key=lambda n: n.index),
                        result, run.changed)
    from ..playbook.runner import run_playbook

    result = run_playbook(
        PLAYBOOK, inventory=inventory, state_dir=state.dir,
        extravars={"vca_cluster": state.name, "vca_setup_roles": settings.for_playbook(setup)},
        limit=",".join(n.name for n in chosen), env={"ANSIBLE_ROLES_PATH": _roles_path()},
        verbose=verbose, hosts_expected=[n.name for n in chosen], title=what, console=console,
    )
    try:
        result.raise_for_failures(what)
    except RemoteFailed as exc:
        by_name = {n.name: n.index for n in chosen}
        failed = sorted(by_name[h] for h in exc.hosts if h in by_name) or sorted(by_name.values())
        raise RemoteFailed(
            exc.message, exc.hosts,
            f"the nodes stay as they are; fix the role, then `vca -c {state.name} setup --node "
            f"{','.join(map(str, failed))}` retries (Ansible output in {result.artifacts_dir / 'stdout'})",
        ) from None
    return SetupRun(chosen, result)


def after_provision(state: ClusterState, inventory: Callable[[], Path], setup: Mapping[str, Sequence[str]],
                    new: Sequence[Node], others: Sequence[Node], named_now: Mapping[str, Sequence[str]],
                    say: Say, console: Console | None = None) -> SetupRun:
    """The stage as ``vca provision`` runs it: on the new nodes only, once they accept SSH.

    ``inventory`` is asked for only when there is something to run. ``named_now`` are roles this
    provision named: nodes that were there before do not get them here, and are told how to.
    """
    run = SetupRun()
    chosen = targets(setup, new)
    if chosen:
        say(f"setting up {len(chosen)} new node{'s' if len(chosen) != 1 else ''}: "
            f"{', '.join(_role_names(setup, chosen))}")
        run = apply(state, inventory(), setup, new, what="setup of the new nodes", console=console,
                    every=[*new, *others])
    behind = targets(named_now, others)
    if behind:
        say(f"{len(behind)} node{'s' if len(behind) != 1 else ''} from before lack the roles named now: "
            f"`vca -c {state.name} setup --node {','.join(str(n.index) for n in behind)}` applies them")
    return run


def _role_names(setup: Mapping[str, Sequence[str]], nodes: Sequence[Node]) -> list[str]:
    """The roles these nodes get, each once, by their last path part."""
    roles = dict.fromkeys(r for n in nodes for r in settings.roles_of(setup, n.role))
    return [Path(r).name if settings.is_path(r) else r for r in roles]


def _roles_path() -> str:
    return os.pathsep.join(str(p) for p in settings.roles_path())
