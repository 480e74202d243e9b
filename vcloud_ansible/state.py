"""Per-user cluster state under $VCA_HOME (default ~/.vca, mode 0700).

    clusters/<name>/cluster.json   the cluster's record: provider and its settings, setup roles
    clusters/<name>/id_ed25519     the cluster's SSH key pair (0600)
    clusters/<name>/known_hosts    host keys of its nodes, checked on every connection
    clusters/<name>/inventory.yml  the generated Ansible inventory (static providers)
    clusters/<name>/ssh_config     Host entries <cluster>-<index>
    clusters/.<name>.lock          held while a command changes the cluster (``ClusterState.lock``)

Every write is atomic (temporary file + rename).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ClusterNotFound, UsageError, VcaError
from .paths import ensure_private_dir, vca_home

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
DEFAULT_CLUSTER = "default"
# How long a command waits for another one changing the same cluster (env VCA_LOCK_WAIT, seconds).
LOCK_WAIT = 1800.0
# Locks this process holds: (path, thread) -> depth (a command that calls another, provision -> inject,
# takes it once).
_held: dict[tuple[Path, int], int] = {}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class ClusterRecord:
    """What vca keeps of a cluster (cluster.json): its provider and settings. Not the user's spec file
    (vcloud_ansible.spec), which describes a cluster to make."""

    name: str
    provider: str
    settings: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    # Setup roles per node role: {"all"|"head"|"worker"|"dev": [role, ...]} (vcloud_ansible.setup).
    setup: dict[str, list[str]] = field(default_factory=dict)
    # The cost guard on the nodes (vcloud_ansible.guard.settings.GuardSettings); empty: the provider's defaults.
    guard: dict[str, Any] = field(default_factory=dict)


class ClusterState:
    """The files of one cluster. Creating it makes the folder and key pair; loading needs them."""

    def __init__(self, name: str, home: Path | None = None) -> None:
        self.name = validate_name(name)
        self.home = home or vca_home()
        self.dir = self.home / "clusters" / name

    # -- paths ---------------------------------------------------------------------------------
    @property
    def record_path(self) -> Path:
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
        return self.record_path.exists()

    def load(self) -> ClusterRecord:
        if not self.exists():
            known = ", ".join(list_clusters(self.home)) or "none"
            raise ClusterNotFound(
                f"unknown cluster '{self.name}' (known: {known})",
                "create it with `vca provision`, or pick one with -c NAME",
            )
        return ClusterRecord(**json.loads(self.record_path.read_text()))

    def create(self, provider: str, settings: dict[str, Any]) -> ClusterRecord:
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
        record = ClusterRecord(name=self.name, provider=provider, settings=settings)
        self.save(record)
        return record

    def save(self, record: ClusterRecord) -> None:
        atomic_write(self.record_path, json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")

    @property
    def lock_path(self) -> Path:
        """Beside the cluster's folder, not in it: it outlives a teardown that removes the folder while
        others wait, and exists before a first provision creates it."""
        return self.home / "clusters" / f".{self.name}.lock"

    @contextlib.contextmanager
    def lock(self, command: str, say: Callable[[str], None] = _stderr, wait: float | None = None
             ) -> Iterator[bool]:
        """Hold the cluster's lock while ``command`` changes it (inject, provision, teardown, stop, run).

        A second command waits, saying once which command it waits for, up to ``wait`` seconds (env
        VCA_LOCK_WAIT, default 30 min), then fails. Re-entrant within one process. Yields whether it
        waited (what the caller listed before may have changed meanwhile).
        """
        path = self.lock_path
        key = (path, threading.get_ident())
        if _held.get(key):
            _held[key] += 1
            try:
                yield False
            finally:
                _held[key] -= 1
            return
        if wait is None:
            try:
                wait = float(os.environ.get("VCA_LOCK_WAIT") or LOCK_WAIT)
            except ValueError:
                raise UsageError(f"VCA_LOCK_WAIT must be a number of seconds, got "
                                 f"'{os.environ['VCA_LOCK_WAIT']}'") from None
        ensure_private_dir(self.home)
        ensure_private_dir(self.home / "clusters")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait
            told = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _lock_holder(fd)
                    if time.monotonic() >= deadline:
                        raise VcaError(
                            f"cluster '{self.name}' is busy: {holder} still runs after {wait:.0f} s",
                            "wait for it to finish (or end it), then run this command again; "
                            "VCA_LOCK_WAIT sets how long to wait") from None
                    if not told:
                        say(f"waiting for {holder} on cluster {self.name} to finish")
                        told = True
                    time.sleep(0.2)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
            _held[key] = 1
            try:
                yield told
            finally:
                del _held[key]
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the lock

    def forget(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def public_key(self) -> str:
        return self.key_path.with_suffix(".pub").read_text().strip()

    def write_known_hosts(self, entries: dict[str, str]) -> None:
        """``entries`` maps a host pattern (name,address) to its public key line."""
        text = "".join(f"{host} {key}\n" for host, key in sorted(entries.items()))
        atomic_write(self.known_hosts, text)


def _lock_holder(fd: int) -> str:
    """'inject (pid 123)', from what the holder wrote into the lock file."""
    try:
        pid, _, command = os.pread(fd, 200, 0).decode(errors="replace").strip().partition(" ")
    except OSError:
        pid, command = "", ""
    if not pid.isdigit():
        return "another vca command"
    return f"{command or 'vca'} (pid {pid})"


def list_clusters(home: Path | None = None) -> list[str]:
    base = (home or vca_home()) / "clusters"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "cluster.json").exists())
