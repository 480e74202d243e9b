"""Per-user cluster state under $VCA_HOME (default ~/.vca, mode 0700).

    clusters/<name>/cluster.json   the spec: provider and its settings, setup roles
    clusters/<name>/id_ed25519     the cluster's SSH key pair (0600)
    clusters/<name>/known_hosts    host keys of its nodes, checked on every connection
    clusters/<name>/inventory.yml  the generated Ansible inventory (static providers)
    clusters/<name>/ssh_config     Host entries <cluster>-<index>

Every write is atomic (temporary file + rename).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ClusterNotFound, UsageError
from .paths import ensure_private_dir, vca_home

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
DEFAULT_CLUSTER = "default"


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(
            f"invalid cluster name '{name}'",
            "use 1-32 characters from a-z, 0-9 and '-', not starting or ending with '-'",
        )
    return name


def current_cluster_name(explicit: str | None) -> str:
    return validate_name(explicit or os.environ.get("VCA_CLUSTER") or DEFAULT_CLUSTER)


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class ClusterSpec:
    name: str
    provider: str
    settings: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    # Setup roles per node role: {"all"|"head"|"worker"|"dev": [role, ...]} (vcloud_ansible.setup).
    setup: dict[str, list[str]] = field(default_factory=dict)


class ClusterState:
    """The files of one cluster. Creating it makes the folder and key pair; loading needs them."""

    def __init__(self, name: str, home: Path | None = None) -> None:
        self.name = validate_name(name)
        self.home = home or vca_home()
        self.dir = self.home / "clusters" / name

    # -- paths ---------------------------------------------------------------------------------
    @property
    def spec_path(self) -> Path:
        return self.dir / "cluster.json"

    @property
    def key_path(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.yml"

    @property
    def ssh_config_path(self) -> Path:
        return self.dir / "ssh_config"

    # -- life cycle ----------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.spec_path.exists()

    def load(self) -> ClusterSpec:
        if not self.exists():
            known = ", ".join(list_clusters(self.home)) or "none"
            raise ClusterNotFound(
                f"unknown cluster '{self.name}' (known: {known})",
                "create it with `vca provision`, or pick one with -c NAME",
            )
        return ClusterSpec(**json.loads(self.spec_path.read_text()))

    def create(self, provider: str, settings: dict[str, Any]) -> ClusterSpec:
        ensure_private_dir(self.home)
        ensure_private_dir(self.home / "clusters")
        ensure_private_dir(self.dir)
        if not self.key_path.exists():
            tmp = self.dir / ".id_ed25519.tmp"
            for p in (tmp, tmp.with_suffix(".tmp.pub")):
                p.unlink(missing_ok=True)
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"vca-{self.name}", "-f", str(tmp)],
                check=True, capture_output=True,
            )
            os.replace(tmp.with_suffix(".tmp.pub"), self.key_path.with_suffix(".pub"))
            os.replace(tmp, self.key_path)
        spec = ClusterSpec(name=self.name, provider=provider, settings=settings)
        self.save(spec)
        return spec

    def save(self, spec: ClusterSpec) -> None:
        atomic_write(self.spec_path, json.dumps(asdict(spec), indent=2, sort_keys=True) + "\n")

    def forget(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def public_key(self) -> str:
        return self.key_path.with_suffix(".pub").read_text().strip()

    def write_known_hosts(self, entries: dict[str, str]) -> None:
        """``entries`` maps a host pattern (name,address) to its public key line."""
        text = "".join(f"{host} {key}\n" for host, key in sorted(entries.items()))
        atomic_write(self.known_hosts, text)


def list_clusters(home: Path | None = None) -> list[str]:
    base = (home or vca_home()) / "clusters"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "cluster.json").exists())
