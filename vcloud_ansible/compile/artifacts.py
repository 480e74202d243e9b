"""The artifacts back, and the inject-ready package.

``collect_artifacts`` is the one call into the collect machinery (node script, sha256 of every file,
manifest): when collect becomes ``Cluster.collect(...)``, only that function changes. It collects
into a staging folder beside --out; only when every artifact matched and arrived intact are the files
moved into --out, each with one rename (a reader sees the old file or the new one, never half of one).
A build that failed, or an artifact that matched nothing, leaves --out as it was.

``write_package`` builds the package in a temporary folder beside DIR (artifacts + the launch script
as an executable ``vcloud-launch``) and renames it into place.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RemoteFailed
from ..node import Node
from ..state import ClusterState, atomic_write
from .plan import MANIFEST_NAME, refuse_nonempty


@dataclass
class Artifact:
    rel: str  # where it lands, relative to --out (or the package)
    remote: str
    size: int
    sha256: str


def collect_artifacts(state: ClusterState, node: Node, remotes: Sequence[str], staging: Path
                      ) -> tuple[Path, list[dict[str, Any]], dict[str, str]]:
    """Collect each absolute ``remotes`` path (or glob) from ``node`` into ``staging`` with the collect
    machinery. Returns the node's folder in staging, the manifest entries, and {remote: error}."""
    from ..collect.layout import Layout
    from ..collect.remote_path import RemoteSpec
    from ..collect.transport import collect_from_nodes

    layout = Layout.make(staging)
    entries: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for remote in remotes:
        (outcome,) = collect_from_nodes(state, [node], layout, RemoteSpec.parse(remote), compression="none")
        if not outcome.ok:
            errors[remote] = outcome.message()
        entries += outcome.entries
    return layout.node_root(node.name, node.index), entries, errors


def fetch(state: ClusterState, node: Node, folder: str, artifacts: Sequence[str], out: Path) -> list[Artifact]:
    """Bring ``artifacts`` (relative to the build ``folder`` on the node) into ``out``; all or nothing."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".vca-compile-", dir=out.parent))
    try:
        remotes = [f"{folder.rstrip('/')}/{a}" for a in artifacts]
        root, entries, errors = collect_artifacts(state, node, remotes, staging)
        if errors:
            named = "; ".join(f"--artifact {a}: {errors[r]}" for a, r in zip(artifacts, remotes, strict=True)
                              if r in errors)
            raise RemoteFailed(f"the build succeeded but {named}", [node.name],
                               "check the artifact paths (relative to SRC on the node); nothing was written to "
                               f"{out}")
        got = []
        for e in entries:
            rel = Path(e["local_path"]).relative_to(root.relative_to(staging)).as_posix()
            got.append(Artifact(rel, e["remote_path"], int(e["size"]), str(e["sha256"])))
        out.mkdir(parents=True, exist_ok=True)
        for a in got:
            dest = out / a.rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(root / a.rel, dest)
        return got
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_manifest(out: Path, node: Node, command: str, artifacts: Sequence[Artifact], built_at: str) -> Path:
    path = out / MANIFEST_NAME
    atomic_write(path, json.dumps({
        "format": "vca-compile-manifest/1", "node": node.name, "node_index": node.index, "build": command,
        "built_at": built_at,
        "artifacts": [{"path": a.rel, "remote_path": a.remote, "size": a.size, "sha256": a.sha256}
                      for a in artifacts],
    }, indent=2) + "\n")
    return path


def write_package(package: Path, launch: Path, sources: Path, artifacts: Sequence[Artifact], force: bool) -> None:
    """``package``/: the artifacts (from ``sources``) and ``launch`` as vcloud-launch; never half-written."""
    refuse_nonempty(package, force)  # again: something may have appeared during the build
    package.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{package.name}.vca-", dir=package.parent))
    try:
        for a in artifacts:
            dest = tmp / a.rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(sources / a.rel, dest)
        shutil.copyfile(launch, tmp / "vcloud-launch")
        mode = os.stat(launch).st_mode
        os.chmod(tmp / "vcloud-launch", (mode & 0o777) | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRUSR)
        os.chmod(tmp, 0o755)
        old = None
        if package.exists():
            if any(package.iterdir()):  # --force: swap, then remove the old one
                old = Path(tempfile.mkdtemp(prefix=f".{package.name}.old-", dir=package.parent))
                os.replace(package, old / "pkg")
            else:
                package.rmdir()
        os.replace(tmp, package)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
