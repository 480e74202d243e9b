"""What vca keeps of the membership under the cluster's state folder: the CPUs each node reported
(the hostfile's slots), and the cluster-internal key pair the nodes use to reach each other."""

from __future__ import annotations

import json
import os
import subprocess
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


def member_key(state: ClusterState) -> Path:
    """The cluster-internal key pair nodes use to reach each other (not the key vca logs in with, so
    that a node never holds the user's key); made on first use, mode 0600."""
    key = state.dir / "member_ed25519"
    if not key.exists():
        tmp = state.dir / f".member_ed25519.{os.getpid()}.tmp"
        for p in (tmp, tmp.with_name(tmp.name + ".pub")):
            p.unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"vca-member-{state.name}",
                        "-f", str(tmp)], check=True, capture_output=True)
        tmp.chmod(0o600)
        os.replace(tmp.with_name(tmp.name + ".pub"), key.with_name(key.name + ".pub"))
        os.replace(tmp, key)
    return key
