"""The services step of `vca up`, written against the services API a cluster offers (HA services:
``services()``, ``add_service``, ``remove_service``) through a small protocol, so that it needs no
more than those three calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..spec import ServiceSpec


@runtime_checkable
class ServiceInfo(Protocol):
    name: str
    command: list[str]
    node: str
    failover: bool


@runtime_checkable
class ServiceHost(Protocol):
    """What a cluster offers for services (vcloud_ansible.Cluster once HA services are in)."""

    def services(self) -> Sequence[Any]: ...

    def add_service(self, name: str, command: list[str], *, node: str = "any", user: str | None = None,
                    cwd: str | None = None, failover: bool = True) -> Any: ...

    def remove_service(self, name: str) -> Any: ...


def same(want: ServiceSpec, have: Any) -> bool:
    """The service runs as the spec says: its command, failover and the node it was asked for (its
    placement: 'any' or a node's name; the spec may name the node by index), not where it runs now."""
    placement = str(getattr(have, "placement", "any"))
    asked = want.node == placement or (want.node.isdigit() and placement.endswith(f"-{want.node}"))
    return list(want.command) == list(have.command) and asked and want.failover == getattr(have, "failover", True)


def service_changes(wanted: Sequence[ServiceSpec], present: Sequence[Any]
                    ) -> tuple[list[ServiceSpec], list[str]]:
    """(services to add, names to remove) so that exactly ``wanted`` runs: a service whose command,
    node or failover changed is removed and added again; one not wanted any more is removed."""
    have = {s.name: s for s in present}
    add = [w for w in wanted if w.name not in have or not same(w, have[w.name])]
    names = {w.name for w in wanted}
    remove = [n for n in have if n not in names] + [w.name for w in add if w.name in have]
    return add, remove


def apply_services(host: ServiceHost, add: Sequence[ServiceSpec], remove: Sequence[str]) -> None:
    for name in remove:
        host.remove_service(name)
    for s in add:
        host.add_service(s.name, list(s.command), node=s.node, failover=s.failover)
