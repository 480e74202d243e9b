"""Refused inputs of heal (gone nodes replaced under their indexes)."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case("heal-unknown-cluster", ("-c", "nosuch", "heal"), "unknown cluster 'nosuch'",
         doc="Healing a cluster that does not exist is refused (it does not create one, nor a lock file)."),
    Case("heal-names-a-node", ("-c", "nosuch", "heal", "2"), "unexpected extra argument (2)",
         doc="`vca heal` takes no node: it replaces exactly the nodes that are gone (`vca status`), never a "
             "live one; `vca remove N` and `vca provision` change the others."),
]
