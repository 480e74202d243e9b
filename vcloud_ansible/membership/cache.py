"""What vca keeps of the membership under the cluster's state folder: the cluster-internal key pair
the nodes use to reach each other (the CPUs they reported are release/cpus.py's: the contract needs them)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..state import ClusterState


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
