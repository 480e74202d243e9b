"""Refused inputs of remove, resize and power (the shape of a cluster)."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case("remove-unknown-index", ("-c", "{cluster}", "remove", "7", "--yes"), "has no node 7 (nodes: 0-1)",
         needs="lab", doc="Removing an index the cluster does not have is refused; nothing is removed."),
    Case("remove-unknown-name", ("-c", "{cluster}", "remove", "{cluster}-9", "--yes"), "has no node '",
         needs="lab", doc="Removing a node name the cluster does not have is refused."),
    Case("remove-unknown-role", ("-c", "{cluster}", "remove", "chef", "--yes"), "has no node 'chef'",
         needs="lab", doc="A role (or name) that does not exist names no node: refused."),
    Case("remove-nothing-named", ("-c", "{cluster}", "remove", "--yes"), "name the nodes to remove",
         needs="lab", doc="`vca remove` without nodes or --workers is refused, never read as every node."),
    Case("remove-both", ("-c", "{cluster}", "remove", "1", "--workers", "1", "--yes"), "not both",
         needs="lab", doc="Nodes and --workers together are refused."),
    Case("remove-workers-zero", ("-c", "{cluster}", "remove", "--workers", "0", "--yes"),
         "--workers must be at least 1", needs="lab", doc="--workers 0 is refused."),
    Case("remove-without-yes", ("-c", "{cluster}", "remove", "1"), "needs --yes", needs="lab",
         doc="Removing nodes without a terminal needs --yes; nothing is removed."),
    Case("resize-zero-without-yes", ("-c", "{cluster}", "resize", "--total", "0"), "needs --yes", needs="lab",
         doc="Resizing to 0 (removing every node, the head too) without a terminal needs --yes."),
    Case("resize-negative", ("-c", "{cluster}", "resize", "--total", "-1"), "at least 0, got -1", needs="lab",
         doc="A negative total is refused."),
    Case("resize-unknown-cluster", ("-c", "nosuch", "resize", "--total", "2"), "unknown cluster 'nosuch'",
         doc="Resizing a cluster that does not exist is refused (it does not create one)."),
    Case("power-bad-action", ("-c", "{cluster}", "power", "reboot"), "'reboot' is not one of", needs="lab",
         doc="`vca power` takes off or on."),
    Case("power-unknown-node", ("-c", "{cluster}", "power", "off", "--node", "5"), "has no node 5", needs="lab",
         doc="Powering off a node the cluster does not have is refused; nothing is powered off."),
    Case("provision-unknown-role", ("provision", "1", "--role", "chef"), "'chef' is not one of",
         doc="A node role that does not exist is refused before anything is made."),
]
