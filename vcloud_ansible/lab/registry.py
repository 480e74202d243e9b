"""The lab's own record of its nodes (machine-wide, root-owned), guarded by a file lock.

It is the lab's source of truth for what exists, so that teardown can clean up after a crash and
two clusters (or two vca processes) never take the same address or interface name.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class LabNode:
    cluster: str
    index: int
    name: str  # hostname and machine name: <cluster>-<index>
    ip: str
    netns: str
    veth: str
    dir: str
    owner: str  # the VCA_HOME that created it: another home may not touch it
    created: float
    role: str = ""  # head | worker | dev; "" in entries written before roles were kept: by index
    stopped: bool = False  # powered off (`vca power off`): no process, mount or namespace; its disk kept

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.index}"


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "registry.json"

    @contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """Hold the lab lock; yields the registry data, written back atomically on exit."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(data)

    def nodes(self, cluster: str | None = None) -> list[LabNode]:
        data = self._read()
        return _nodes_of(data, cluster)

    def _read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        data.setdefault("nodes", {})
        return data

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def _nodes_of(data: dict[str, Any], cluster: str | None) -> list[LabNode]:
    nodes = [LabNode(**v) for v in data["nodes"].values()]
    if cluster is not None:
        nodes = [n for n in nodes if n.cluster == cluster]
    return sorted(nodes, key=lambda n: (n.cluster, n.index))


def put(data: dict[str, Any], node: LabNode) -> None:
    data["nodes"][node.key] = asdict(node)


def drop(data: dict[str, Any], node: LabNode) -> None:
    data["nodes"].pop(node.key, None)


def nodes_in(data: dict[str, Any], cluster: str | None = None) -> list[LabNode]:
    return _nodes_of(data, cluster)
