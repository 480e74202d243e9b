"""What every provider offers: its declared settings, create nodes with the next free indexes, list
them from its source of truth, destroy some or all, and describe them for Ansible."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..node import Node
from ..state import ClusterState
from .settings import Setting

Say = Callable[[str], None]


class Provider(Protocol):
    name: ClassVar[str]
    # Declared once: the `vca provision` flags, environment variables and spec file section come from
    # here. A provider that declares settings is Configurable (it checks and stores them).
    settings: ClassVar[tuple[Setting, ...]]

    def check(self) -> None:
        """Raise EnvironmentProblem when this machine cannot use the provider."""

    def create(self, state: ClusterState, count: int, say: Say, role: str | None = None) -> list[Node]:
        """Create ``count`` nodes with the next free indexes; all of them or none. ``role``: of every
        new node, kept with the node (None: node 0 head, others worker)."""

    def nodes(self, state: ClusterState) -> list[Node]:
        """The cluster's nodes, read from the provider's source of truth, sorted by index."""

    def destroy(self, state: ClusterState, indexes: list[int] | None, say: Say) -> list[Node]:
        """Remove the given nodes (all when None) and everything made for them; idempotent."""

    def inventory_source(self, state: ClusterState) -> Path | None:
        """An inventory the provider maintains itself (e.g. an aws_ec2 plugin file), or None for the
        static inventory.yml that vca generates from ``nodes()``."""


@runtime_checkable
class Configurable(Protocol):
    """A provider with settings (region, image, ...): ``vca provision`` flags, env and spec file."""

    def prepare(self, stored: dict[str, Any], overrides: dict[str, Any], creating: bool) -> dict[str, Any]:
        """Merge ``overrides`` over the ``stored`` settings and check them against the provider
        (read-only) before anything is created; return the settings to store with the cluster."""


@runtime_checkable
class Verifiable(Protocol):
    """A provider that can list everything a cluster left behind, beyond its nodes."""

    def leftovers(self, state: ClusterState) -> list[str]:
        """One line per resource of the cluster that still exists ("security-group sg-...")."""


@runtime_checkable
class Healable(Protocol):
    """A provider that can bring gone nodes back under their indexes (``vca heal``)."""

    def replace(self, state: ClusterState, gone: list[Node], say: Say,
                ready: Callable[[list[Node]], None] | None = None) -> list[Node]:
        """New nodes under the indexes and roles of ``gone`` (nodes the provider lists as down or
        terminated), after removing what is left of them; all of them or none. ``ready(new)``: the
        caller's check that the new nodes are usable (SSH); where the provider can, it removes them
        again when that raises, and the nodes stay listed as gone."""


@runtime_checkable
class Powerable(Protocol):
    """A provider that can power nodes off and on again with their disks kept (`vca power`)."""

    def power_off(self, state: ClusterState, indexes: list[int], say: Say) -> list[Node]:
        """Stop the running nodes among ``indexes``; their disks, indexes and roles are kept."""

    def power_on(self, state: ClusterState, indexes: list[int], say: Say) -> list[Node]:
        """Start the stopped nodes among ``indexes`` again; returns them (with their host keys)."""


@runtime_checkable
class Adopting(Protocol):
    """A provider that can take machines that exist already into a cluster (`vca import`)."""

    def adopt(self, state: ClusterState, ids: list[str], say: Say, role: str | None = None) -> list[Node]:
        """Make the machines ``ids`` nodes with the next free indexes; refuse any of another cluster."""
