"""The controller's part for one node: check, verify and place what the node listed and sent.

Nothing is taken by its archive member name: the archive is unpacked into an empty staging folder, which
is walked without following links, and exactly the regular files the node listed are taken, each
checked against the node's sha256, under a local name derived from the listed remote path
(vcloud_ansible.collect.layout), then recorded as manifest entries of the node's outcome.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .checksum import fd_sha256, file_sha256
from .errors import CollectError, UnsafePath
from .layout import Layout, free_bytes, join_remote, local_rel, make_parents, place, refuse_link, regular_files
from .manifest import Manifest, utc_now
from .node_script import Probe
from .outcome import NodeInfo, NodeOutcome
from .remote_path import RemoteSpec

# Unpack the node's archive into the given empty staging folder; returns "" or what went wrong.
Extract = Callable[[Path], str]




class NodeCollector:
    """The controller's part for one node, given the node's probe and the fetched archive."""

    def __init__(self, layout: Layout, spec: RemoteSpec, node: NodeInfo, overwrite: bool) -> None:
        self.layout = layout
        self.spec = spec
        self.node = node
        self.overwrite = overwrite
        self.root = layout.node_root(node.dir_name, node.index)
        self.outcome = NodeOutcome(node)
        self._folders: set[str] = set()
        self._staged = 0
        self._now = utc_now()
        self._base = str(layout.base).rstrip("/")  # every dest starts with it: local paths by slicing
        self._full = False  # this machine's disk filled up during this node's transfer
        self._free = 0  # bytes free when it did

    def held(self, manifest: Manifest) -> dict[tuple[str, str], str]:
        """Files of this node the manifest records and that are still here unchanged, where this REMOTE
        would put them: (sha256, remote path) -> local path. The node need not send them again."""
        out: dict[tuple[str, str], str] = {}
        for e in manifest.entries_of(self.node.dir_name):
            path = self.layout.base / e["local_path"]
            if "\n" in e["remote_path"] or not self._same_place(e["remote_path"], path):
                continue  # the node's skip filter works on lines: such a name is always sent
            with contextlib.suppress(OSError):
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_size == e["size"] and file_sha256(path) == e["sha256"]:
                    out[(e["sha256"], e["remote_path"])] = e["local_path"]
        return out

    def _same_place(self, remote: str, local: Path) -> bool:
        """Whether this REMOTE maps ``remote`` to ``local`` (the node's base folder is not known yet:
        the remote path must end in the local path below the prefix)."""
        try:
            rel = local.relative_to(self.root).as_posix() if local != self.root else ""
        except ValueError:
            return False
        tail = "/" + "/".join(p for p in (self.spec.prefix, rel) if p not in ("", "."))
        if self.spec.base == "root":
            return remote == (tail if tail != "/" else "/")
        return remote.endswith(tail) if tail != "/" else True

    def finish(self, probe: Probe, archive: Extract | None, held: Mapping[tuple[str, str], str]) -> NodeOutcome:
        """Check, verify and place everything the node sent; record what is held already."""
        o = self.outcome
        o.hostname = probe.host
        o.links_skipped = list(probe.links)
        if probe.error:
            o.errors.append(probe.error)
            return o
        if not probe.complete or not probe.base:
            o.errors.append("the node's listing was cut short")
            return o
        o.release = probe.release or None
        try:
            refuse_link(self.root)
        except UnsafePath as exc:
            o.errors.append(exc.one_line())
            return o
        prefix = join_remote(probe.base, self.spec.prefix)
        targets: dict[str, str] = {}  # remote path -> local path relative to the node folder
        for remote in probe.files:
            try:
                targets[remote] = local_rel(remote, prefix, allow_self=self.layout.suffix and self.spec.contents)
            except UnsafePath as exc:
                o.errors.append(exc.message)
        wanted = {r: sha for r, sha in probe.files.items() if r in targets and (sha, r) not in held}
        for r, sha in probe.files.items():
            if r not in targets or (sha, r) not in held:
                continue
            where = self.root / targets[r] if targets[r] else self.root
            if where.relative_to(self.layout.base).as_posix() == held[(sha, r)]:
                o.kept += 1
            else:  # only when the same file was collected before under another REMOTE form
                o.errors.append(f"{r} was not sent (held as {held[(sha, r)]}): collect it again")
        if wanted and archive is None:
            o.errors.append("the node sent no archive")
            return o
        if archive is not None:
            self._unpack(archive, wanted, targets)
        return o

    def _unpack(self, extract: Extract, wanted: Mapping[str, str], targets: Mapping[str, str]) -> None:
        """Have the archive extracted into an empty staging folder, then take from it exactly the regular
        files the node listed, each verified against the node's sha256. Nothing found there that the node
        did not list, and nothing that is not a plain file, is ever placed."""
        o = self.outcome
        staging = tempfile.mkdtemp(prefix=f".vca-collect-{self.node.dir_name}-", dir=self.layout.base)
        try:
            problem = extract(Path(staging))
            # GNU tar says "Wrote only N of M bytes" when the disk fills in the middle of a file.
            if "No space left on device" in problem or "Wrote only" in problem:
                self._disk_full()
            found, strange = regular_files(staging)
            names = {r[1:]: r for r in wanted}  # member names: listed paths without the leading "/"
            for rel in strange[:5]:
                o.errors.append(f"refused archive member {rel!r}: not a regular file")
            extra = sorted(set(found) - set(names))
            if extra:
                o.errors.append(f"refused {len(extra)} archive member(s) that the node did not list, e.g. {extra[0]!r}")
            missing = []
            for rel, remote in names.items():
                if rel in found:
                    self._take(f"{staging}/{rel}", remote, wanted[remote], targets[remote])
                else:
                    missing.append(remote)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                o.errors.append(f"cannot unpack what the node sent: {exc}")
                return
            self._disk_full()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if self._full:
            # What arrived whole is placed and recorded; the rest comes with --retry-failed.
            o.errors.insert(0, f"the local disk is full at {self.layout.local} ({self._free} bytes free): "
                               "free space and run with --retry-failed")
            return
        if missing:
            o.errors.append(f"{len(missing)} listed file(s) missing from the archive, e.g. {sorted(missing)[0]}")
        if problem:  # e.g. a member named with ".." (tar skips it): no sound node sends one
            o.errors.append(f"bad archive from the node: {problem}")

    def _disk_full(self) -> None:
        if not self._full:
            self._full = True
            self._free = free_bytes(self.layout.base)

    def _take(self, staged: str, remote: str, sha: str, rel: str) -> None:
        """Verify one staged file against the node's sha256 and place it. Hot path (once per file)."""
        o = self.outcome
        # Only ever read a plain file: the walk found one here and tar is gone; O_NOFOLLOW and fstat
        # make sure.
        try:
            fd = os.open(staged, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    o.errors.append(f"refused archive member for {remote}: not a regular file")
                    return
                digest = fd_sha256(fd, st.st_size)
                os.fchmod(fd, (st.st_mode & 0o755) | 0o600)  # the mode travels, never special bits
            finally:
                os.close(fd)
        except OSError as exc:
            o.errors.append(f"cannot read {remote} after the transfer: {exc}")
            return
        if digest != sha:
            if self._full:  # cut short by the full disk: it comes with --retry-failed
                return
            o.errors.append(f"checksum mismatch for {remote} (the file changed while it was collected?)")
            return
        dest = f"{self.root}/{rel}" if rel else str(self.root)
        try:
            if rel:
                self._folder(os.path.dirname(dest))
            how = place(staged, dest, sha, st.st_size, self.overwrite)
        except CollectError as exc:
            o.errors.append(exc.one_line())
            return
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            self._disk_full()
            return
        if how == "same":
            o.same += 1
        else:
            o.bytes += st.st_size
            setattr(o, how, getattr(o, how) + 1)
        o.entries.append(self.entry(remote, dest, st.st_size, sha))

    def _folder(self, folder: str) -> None:
        """Make ``folder`` (below the node's root) once per run, refusing one that a link leads elsewhere."""
        if folder in self._folders:
            return
        make_parents(folder, str(self.root), self._folders)

    def entry(self, remote: str, dest: str, size: int, sha: str) -> dict[str, Any]:
        return {
            "node": self.node.dir_name, "node_index": self.node.index, "hostname": self.outcome.hostname,
            "instance_id": self.node.instance_id, "remote_path": remote,
            "local_path": dest[len(self._base) + 1:], "size": size, "sha256": sha,
            "collected_at": self._now, "release": self.outcome.release,
        }
