"""The HA cluster's membership, kept in step with the cluster's nodes: the setup stage's rule for the
one role it never applies to part of the cluster.

When the setup roles name ``ha_cluster``, every node that gets it is part of the HA cluster (in index
order: the first ``ha_cluster_full_members`` are corosync members, the rest pacemaker_remote nodes).
The role is never applied to some of them only: a new node alone would start a cluster nobody else
knows. So after the setup stage put the other roles on new or healed nodes, and after nodes were
removed or powered on again, one run of the role on every live HA node installs and configures the
new ones, rewrites corosync.conf everywhere, reloads the members that run, adds or drops remote nodes
and waits until the cluster is quorate with every live node online.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RemoteFailed
from ..node import Node
from ..state import ClusterState
from . import settings

if TYPE_CHECKING:
    from rich.console import Console

    from ..playbook.runner import RunResult

ROLE = "ha_cluster"


def is_ha_role(role: str) -> bool:
    return Path(role).name == ROLE


def named(setup: Mapping[str, Sequence[str]]) -> bool:
    """Whether the setup roles name ha_cluster (by name or as a folder of that name)."""
    return any(is_ha_role(r) for roles in settings.normalized(setup).values() for r in roles)


def ha_nodes(setup: Mapping[str, Sequence[str]], nodes: Sequence[Node]) -> list[Node]:
    """The nodes that get ha_cluster, in index order, whatever their state."""
    return sorted((n for n in nodes if any(is_ha_role(r) for r in settings.roles_of(setup, n.role))),
                  key=lambda n: n.index)


def without_ha(setup: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The setup roles but ha_cluster."""
    return settings.normalized({on: [r for r in roles if not is_ha_role(r)]
                                for on, roles in settings.normalized(setup).items()})


def only_ha(setup: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Only ha_cluster, where it is named."""
    return settings.normalized({on: [r for r in roles if is_ha_role(r)]
                                for on, roles in settings.normalized(setup).items()})


def secrets_dir(state: ClusterState) -> Path:
    """Where the cluster's corosync and pacemaker keys are kept (made by the role, 0600, folder 0700)."""
    return state.dir / "ha"


def extravars(state: ClusterState, setup: Mapping[str, Sequence[str]], every: Sequence[Node]) -> dict[str, Any]:
    """What vca tells the role: every HA node (down ones stay members) and where the keys are."""
    return {"ha_cluster_nodes": [n.name for n in ha_nodes(setup, every)],
            "ha_cluster_secrets_dir": str(secrets_dir(state))}


def sync(state: ClusterState, inventory: Path, setup: Mapping[str, Sequence[str]], every: Sequence[Node], *,
         what: str = "HA membership", console: Console | None = None, verbose: int = 0) -> RunResult | None:
    """One run of ha_cluster on every live HA node of ``every`` (the cluster's nodes as listed now).
    None when ha_cluster is not named or no HA node runs. RemoteFailed when the role failed."""
    if not named(setup):
        return None
    live = [n for n in ha_nodes(setup, every) if n.state == "running"]
    if not live:
        return None
    import os

    from ..playbook.runner import run_playbook

    roles_path = os.pathsep.join(str(p) for p in settings.roles_path())
    result = run_playbook(
        "setup", inventory=inventory, state_dir=state.dir,
        extravars={"vca_cluster": state.name, "vca_setup_roles": settings.for_playbook(only_ha(setup)),
                   **extravars(state, setup, every)},
        limit=",".join(n.name for n in live), env={"ANSIBLE_ROLES_PATH": roles_path},
        verbose=verbose, hosts_expected=[n.name for n in live], title=what, console=console,
    )
    try:
        result.raise_for_failures(what)
    except RemoteFailed as exc:
        raise RemoteFailed(
            exc.message, exc.hosts,
            f"once the nodes answer, `vca -c {state.name} setup` runs it again "
            f"(Ansible output in {result.artifacts_dir / 'stdout'})",
        ) from None
    return result
