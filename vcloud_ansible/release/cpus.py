"""The CPUs each node reported, kept under the cluster's state folder: the slots of the contract's
hostfile, which both inject (the contract it installs) and the membership push (which asks the nodes)
write the same way."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..state import ClusterState, atomic_write


def _cpus_path(state: ClusterState) -> Path:
    return state.dir / "cpus.json"


def load_cpus(state: ClusterState) -> dict[str, int]:
    """CPUs per node name, as the nodes reported them (empty when never asked)."""
    try:
        doc = json.loads(_cpus_path(state).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def save_cpus(state: ClusterState, cpus: dict[str, int], live: Iterable[str]) -> None:
    """Keep ``cpus`` for the nodes named ``live`` only (a removed node's index may come back elsewhere)."""
    keep = set(live)
    atomic_write(_cpus_path(state), json.dumps({k: v for k, v in sorted(cpus.items()) if k in keep}) + "\n")
