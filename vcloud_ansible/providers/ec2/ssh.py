"""First contact with new EC2 nodes: where SSH reaches them, and their host keys.

EC2 does not tell the host keys of a new instance before it boots, so vca learns each key on first
contact (ssh-keyscan) and pins it to the instance id. From then on known_hosts is written from that
record, so a node whose address changes (stop/start, a new vca:ssh_host tag) keeps its key, and a
new machine behind an old address is refused.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ...errors import ProviderError
from ...state import ClusterState, atomic_write
from ..base import Say
from .api import TAG_SSH_HOST, TAG_SSH_PORT, Instance

MAX_PARALLEL = 32  # like sshexec: bounded, far below the open-files limit
KEYSCAN_TIMEOUT = 5
ROUND_SECONDS = 3.0
# Strongest first; ssh then negotiates the type it has a key for.
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa")


def ssh_target(inst: Instance, ssh_via: str) -> tuple[str, int] | None:
    """(host, port) that SSH uses for ``inst``: the vca:ssh_host/vca:ssh_port tags when present,
    else the public address (private with ``ssh_via`` private); None when there is none yet."""
    raw_port = inst.tags.get(TAG_SSH_PORT, "").strip()
    port = int(raw_port) if raw_port.isdigit() and 0 < int(raw_port) < 65536 else 22
    host = inst.tags.get(TAG_SSH_HOST, "").strip()
    if host:
        return host, port
    if ssh_via == "tag":
        return None
    if ssh_via == "private":
        return (inst.private_ip, port) if inst.private_ip else None
    addr = inst.public_ip or inst.private_ip
    return (addr, port) if addr else None


class HostKeys:
    """Host keys learnt on first contact, by instance id (clusters/<name>/ec2-host-keys.json)."""

    def __init__(self, state: ClusterState) -> None:
        self.path: Path = state.dir / "ec2-host-keys.json"

    def load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def update(self, keys: dict[str, str]) -> None:
        if keys:
            self._write({**self.load(), **keys})

    def keep_only(self, ids: Iterable[str]) -> None:
        live = set(ids)
        current = self.load()
        if set(current) - live:
            self._write({k: v for k, v in current.items() if k in live})

    def _write(self, data: dict[str, str]) -> None:
        if self.path.parent.is_dir():
            atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def keyscan(host: str, port: int, timeout: int = KEYSCAN_TIMEOUT) -> str | None:
    """The host's strongest key as '<type> <base64>', or None when it does not answer yet."""
    try:
        res = subprocess.run(
            ["ssh-keyscan", "-T", str(timeout), "-p", str(port), "-t", "ed25519,ecdsa,rsa", host],
            capture_output=True, text=True, timeout=timeout + 5, check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return None
    found: dict[str, str] = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            found.setdefault(parts[1], parts[2])
    for kind in KEY_TYPES:
        if kind in found:
            return f"{kind} {found[kind]}"
    return None


def learn_host_keys(describe: Callable[[], list[Instance]], is_new: Callable[[Instance], bool], ssh_via: str,
                    timeout: float, store: HostKeys, say: Say,
                    scan: Callable[[str, int], str | None] = keyscan) -> tuple[set[str], list[Instance]]:
    """Wait until every new instance answers SSH and record its host key.

    The new instances are those of the first ``describe()`` for which ``is_new`` holds. Each round
    re-reads the instances (one EC2 call), because addresses and vca:ssh_host tags can appear after
    launch, then scans the ones with an address in parallel. Returns the new ids and the last listing.
    """
    instances = describe()
    ids = {i.id for i in instances if is_new(i)}
    known = store.load()
    pending = {i for i in ids if i not in known}
    if pending:
        say(f"waiting for SSH host keys of {len(pending)} node{'s' if len(pending) != 1 else ''}")
    deadline = time.monotonic() + timeout
    while pending:
        current = {i.id: i for i in instances}
        vanished = sorted(pending - set(current))
        if vanished:
            raise ProviderError(f"instances ended while starting: {', '.join(vanished)}",
                                "capacity, quota or spot interruption; see the EC2 console")
        targets = {}
        for iid in pending:
            inst = current[iid]
            target = ssh_target(inst, ssh_via) if inst.state == "running" else None
            if target is not None:
                targets[iid] = target
        if targets:
            with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(targets))) as pool:
                found = dict(zip(targets, pool.map(lambda t: scan(*t), targets.values()), strict=True))
            learnt = {iid: key for iid, key in found.items() if key}
            store.update(learnt)
            pending -= set(learnt)
        if not pending:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            names = [f"{current[i].tags.get('Name', i)}" for i in sorted(pending)]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise ProviderError(
                f"{len(pending)} node{'s' if len(pending) != 1 else ''} did not answer SSH within "
                f"{timeout:.0f} s: {shown}",
                "check --ssh-cidr, --ssh-via and the security group; --ssh-timeout waits longer",
            )
        time.sleep(min(ROUND_SECONDS, left))
        instances = describe()
    return ids, instances
