"""Refused inputs of `vca service`. Those that need an HA cluster (needs="ha") run in
tests/e2e/test_service.py on its cluster, which has a service "web"; the warning of a service on a
one-node cluster is proven in tests/unit/service/test_service_ops.py."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case("service-empty-command", ("service", "add", "web"), "a service needs a command",
         doc="`service add` without a command (nothing after --) is refused before the cluster is looked at."),
    Case("service-bad-name", ("service", "add", "Web Server", "--", "true"), "invalid service name",
         doc="A service name pacemaker could not take as an id (spaces, capitals) is refused."),
    Case("service-no-ha", ("-c", "{cluster}", "service", "list"), "has no HA cluster", needs="lab",
         doc="`service` on a cluster without the ha_cluster setup role says how to add it."),
    Case("service-unknown-node", ("-c", "{cluster}", "service", "add", "web2", "--node", "9", "--", "true"),
         "has no HA node '9'", needs="ha",
         doc="`service add --node N` of a node that is not in the HA cluster is refused, naming the HA nodes."),
    Case("service-duplicate", ("-c", "{cluster}", "service", "add", "web", "--", "true"), "already has a service",
         needs="ha", doc="A second service of the same name is refused; the first one keeps running."),
    Case("service-remove-unknown", ("-c", "{cluster}", "service", "remove", "nosuch"), "has no service 'nosuch'",
         needs="ha", doc="`service remove` of a service that does not exist is refused."),
    Case("service-move-unknown", ("-c", "{cluster}", "service", "move", "nosuch", "1"), "has no service 'nosuch'",
         needs="ha", doc="`service move` of a service that does not exist is refused."),
    Case("service-move-unknown-node", ("-c", "{cluster}", "service", "move", "web", "9"), "has no HA node '9'",
         needs="ha", doc="`service move` to a node that is not in the HA cluster is refused."),
]
