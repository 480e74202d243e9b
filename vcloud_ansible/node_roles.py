"""Node roles: what a node is for in its cluster (head, worker, dev), chosen when it is provisioned.

Every provider keeps a node's role with the node (the lab in its registry, EC2 in the vca:role tag);
the inventory groups nodes by it and the setup stage applies roles per node role. This module holds
the values and the rules checked before anything is made: a known role, and at most one head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from .providers.base import Node

ROLES = ("head", "worker", "dev")


def check_role(role: str | None) -> None:
    """Refuse a role that is not one of ROLES (None: the default rule)."""
    if role is not None and role not in ROLES:
        raise UsageError(f"unknown node role '{role}'", f"--role takes one of {', '.join(ROLES)}")


def for_new_nodes(cluster: str, role: str | None, count: int, existing: Sequence[Node]) -> str | None:
    """The role to give ``count`` new nodes of a cluster whose nodes are ``existing``; None: the
    provider's default rule (node 0 head, others worker). Refuses a second head.

    A cluster that has a head already gets workers by default, even at a free index 0 (EC2 reuses
    the lowest free index).
    """
    check_role(role)
    heads = [n.name for n in existing if n.role == "head"]
    if role is None:
        return "worker" if heads else None
    if role != "head" or count == 0:  # converging on a size the cluster has adds nobody
        return role
    if heads:
        raise UsageError(f"cluster '{cluster}' already has a head ({heads[0]}); a cluster has at most one",
                         "add these nodes as --role worker or --role dev")
    if count > 1:
        raise UsageError(f"--role head would add {count} heads; a cluster has at most one",
                         "add one head, and the other nodes with --role worker or --role dev")
    return role
