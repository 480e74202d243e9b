"""The manifest beside the results: one entry per local file, the nodes whose last collection failed,
merged under a lock by every run (and by every node of an Ansible run)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CollectError
from .layout import Layout, unwritable
from .outcome import NodeInfo, NodeOutcome
from .remote_path import RemoteSpec

MANIFEST_FORMAT = "vca-collect-manifest/1"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Manifest:
    """The record beside the results: one entry per local file (keyed by its path relative to the
    manifest's folder), and the nodes whose last collection failed."""

    path: Path
    layout: str = "folders"
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise CollectError(f"cannot read the manifest {path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise CollectError(f"{path} is not a vca collect manifest", "move it away or pick another LOCAL")
        files = {e["local_path"]: e for e in doc.get("files", []) if isinstance(e, dict) and "local_path" in e}
        return cls(path, doc.get("layout", "folders"), files, dict(doc.get("failed_nodes") or {}),
                   list(doc.get("sources") or []))

    def entries_of(self, node: str) -> list[dict[str, Any]]:
        return [e for e in self.files.values() if e.get("node") == node]

    def to_json(self) -> str:
        head = {
            "format": MANIFEST_FORMAT,
            "layout": self.layout,
            "updated_at": utc_now(),
            "sources": self.sources,
            "failed_nodes": dict(sorted(self.failed_nodes.items())),
        }
        # One file per line: readable, greppable, and encoded by json's fast path (no indent).
        lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
        files = ",\n  ".join(json.dumps(self.files[k]) for k in sorted(self.files))
        return "{\n" + "\n".join(lines) + f'\n "files": [\n  {files}\n ]\n}}\n' if files else \
            "{\n" + "\n".join(lines) + '\n "files": []\n}\n'

    def merge(self, layout_name: str, source: str, entries: Iterable[dict[str, Any]],
              failed: Mapping[str, dict[str, Any]], succeeded: Iterable[str]) -> None:
        self.layout = layout_name
        if source and source not in self.sources:
            self.sources.append(source)
        for e in entries:
            self.files[e["local_path"]] = e
        for name in succeeded:
            self.failed_nodes.pop(name, None)
        for name, why in failed.items():
            self.failed_nodes[name] = {**why, "at": utc_now()}

    def save(self) -> None:
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w") as f:
                f.write(self.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except OSError as exc:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise unwritable(self.path.parent, exc) from None


@contextlib.contextmanager
def manifest_locked(path: Path) -> Iterator[Manifest]:
    """Load, change and save the manifest while holding a lock on its folder: nodes are collected by
    parallel processes that each record their own files."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        manifest = Manifest.load(path)
        yield manifest
        manifest.save()
    finally:
        os.close(fd)


def record(layout: Layout, source: str, entries: Iterable[dict[str, Any]],
           failed: Mapping[str, dict[str, Any]] | None = None, succeeded: Iterable[str] = ()) -> None:
    """Merge one run's results into the manifest: entries (replacing those of the same local path),
    nodes that failed (with why), and nodes that succeeded (no longer failed)."""
    layout.prepare()
    with manifest_locked(layout.manifest_path) as m:
        m.merge("suffix" if layout.suffix else "folders", source, entries, failed or {}, succeeded)


def record_outcomes(layout: Layout, spec: RemoteSpec, outcomes: Sequence[NodeOutcome]) -> None:
    """Merge the files and failures of several nodes into the manifest in one write."""
    entries = [e for o in outcomes for e in o.entries]
    failed = {o.node.dir_name: failure(o.node, spec.given, o.message()) for o in outcomes if not o.ok}
    record(layout, spec.given, entries, failed, [o.node.dir_name for o in outcomes if o.ok])


def record_outcome(layout: Layout, spec: RemoteSpec, outcome: NodeOutcome) -> None:
    record_outcomes(layout, spec, [outcome])


def failure(node: NodeInfo, remote: str, message: str) -> dict[str, Any]:
    return {"node_index": node.index, "remote": remote, "error": message}
