"""Where collected files land on this machine, and writing them there safely.

``LOCAL/<cluster>-<index>/`` with the manifest LOCAL/vca-manifest.json, or with ``suffix`` the old flat
``LOCAL.<index>`` with ``LOCAL.manifest.json`` beside it. A remote name becomes a local path only when it
is plainly below the collected folder; nothing is ever written through a link below LOCAL; a file is
moved into place under the overwrite rule (same content: fine; other content: kept, unless
``overwrite``). The one-line errors for a LOCAL this machine cannot write into are here too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvironmentProblem, UsageError, VcaError
from .checksum import file_sha256
from .errors import Conflict, UnsafePath

MANIFEST_NAME = "vca-manifest.json"


def node_dir_name(cluster: str | None, index: int | None, host: str) -> str:
    """``<cluster>-<index>`` when the inventory says both, else the inventory host name."""
    return f"{cluster}-{index}" if cluster and index is not None else host


@dataclass(frozen=True)
class Layout:
    """Where results land: ``LOCAL/<cluster>-<index>/`` with LOCAL/vca-manifest.json, or with ``suffix``
    the old flat form ``LOCAL.<index>`` with ``LOCAL.manifest.json`` beside it."""

    local: Path
    suffix: bool = False

    @classmethod
    def make(cls, local: str | Path, suffix: bool = False) -> Layout:
        path = Path(os.path.abspath(Path(local).expanduser()))
        if suffix and path == path.parent:
            raise UsageError("--suffix needs a LOCAL name such as results/out (files land in out.0, out.1, ...)")
        return cls(path, suffix)

    @property
    def base(self) -> Path:
        """The folder holding the manifest; manifest paths are relative to it."""
        return self.local.parent if self.suffix else self.local

    @property
    def manifest_path(self) -> Path:
        if self.suffix:
            return self.local.parent / f"{self.local.name}.manifest.json"
        return self.local / MANIFEST_NAME

    def node_root(self, dir_name: str, index: int | None) -> Path:
        if self.suffix:
            return self.local.with_name(f"{self.local.name}.{index if index is not None else dir_name}")
        return self.local / dir_name

    def check(self) -> None:
        """LOCAL must be (or become) a folder; with ``suffix`` its parent must be."""
        folder = self.base
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"LOCAL {folder} is a file", "give a folder (it is created when missing)")

    def prepare(self) -> None:
        """Create LOCAL (with ``suffix`` its folder) and make sure this machine can write there."""
        self.check()
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".vca-probe-", dir=self.base)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise unwritable(self.base, exc) from None

    def refuse_links(self, nodes: Iterable[tuple[str, int | None]]) -> None:
        """Refuse, before any node is asked, a node's folder (``LOCAL/<cluster>-<i>`` or ``LOCAL.<i>``)
        that is a link: vca never writes through one. ``nodes``: (dir name, index)."""
        for dir_name, index in nodes:
            try:
                refuse_link(self.node_root(dir_name, index))
            except UnsafePath as exc:
                raise UsageError(exc.message, exc.hint) from None


def refuse_link(path: Path | str) -> None:
    """Raise ``UnsafePath`` when ``path`` is a link (vca writes into real folders only)."""
    with contextlib.suppress(OSError):
        if os.path.islink(path):
            raise UnsafePath(f"{path} is a link (to {os.readlink(path)}): vca never writes through links",
                             "remove it or collect into another LOCAL")


def unwritable(where: Path | str, exc: OSError) -> VcaError:
    """The one-line error for a LOCAL this machine cannot write into."""
    if exc.errno == errno.ENOSPC:
        return EnvironmentProblem(f"the local disk is full at {where} ({free_bytes(where)} bytes free)",
                                  "free space and run the same command again")
    why = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied"}.get(exc.errno or 0, exc.strerror or str(exc))
    return EnvironmentProblem(f"cannot write into {where}: {why}", "pick a LOCAL this machine can write into")


def free_bytes(where: Path | str) -> int:
    """Bytes an unprivileged writer may still use at ``where`` (or its nearest existing parent)."""
    path = Path(where)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def local_rel(remote_path: str, prefix_path: str, allow_self: bool) -> str:
    """The local path (relative to the node's folder) of ``remote_path`` found under ``prefix_path``.

    Raises ``UnsafePath`` for anything that is not plainly below the prefix: ``..`` or ``.`` components,
    empty components, NUL. ``allow_self``: the prefix is itself a file (``--suffix`` with one file), ``""``.
    """
    if "\0" in remote_path:
        raise UnsafePath(f"refused remote name {remote_path!r}: it contains a NUL byte")
    if remote_path == prefix_path:
        if allow_self:
            return ""
        raise UnsafePath(f"refused remote name {remote_path!r}: it is the collected folder itself")
    head = prefix_path.rstrip("/") + "/"
    if not remote_path.startswith(head):
        raise UnsafePath(f"refused remote name {remote_path!r}: it is not below {prefix_path}")
    rel = remote_path[len(head):]
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"refused remote name {remote_path!r}: it would land outside the node's folder")
    return rel


def join_remote(base: str, rel: str) -> str:
    """The node shell's ``$B/$m``: ``rel`` under the absolute ``base``; ``.`` is the base itself."""
    if rel in ("", "."):
        return base
    return base.rstrip("/") + "/" + rel


def regular_files(root: str) -> tuple[set[str], list[str]]:
    """Paths (relative to ``root``) of the regular files below it, and of anything else that is not a
    folder; links are never followed, so every path found is a real place inside ``root``."""
    found: set[str] = set()
    strange: list[str] = []
    todo = [""]
    while todo:
        rel = todo.pop()
        with os.scandir(f"{root}/{rel}" if rel else root) as it:
            for e in it:
                name = f"{rel}/{e.name}" if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    todo.append(name)
                elif e.is_file(follow_symlinks=False):
                    found.add(name)
                else:
                    strange.append(name)
    return found, strange


def place(staged: str, dest: str, sha: str, size: int, overwrite: bool) -> str:
    """Move ``staged`` to ``dest`` under the overwrite rule: ``new``, ``same`` (identical file kept,
    staged copy dropped) or ``replaced`` (only with ``overwrite``); raises ``Conflict`` otherwise.
    ``dest``'s folder must exist (``_make_parents``)."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        os.replace(staged, dest)
        return "new"
    if stat.S_ISREG(st.st_mode) and st.st_size == size and file_sha256(Path(dest)) == sha:
        os.unlink(staged)
        return "same"
    if stat.S_ISDIR(st.st_mode):
        raise Conflict(f"{dest} is a folder here but a file on the node; kept it")
    if not overwrite:
        raise Conflict(f"{dest} exists with other content; kept it (--overwrite replaces it)")
    os.replace(staged, dest)
    return "replaced"


def make_parents(folder: str, root: str, known: set[str] | None = None) -> None:
    """Create ``folder`` (``root`` or below it) and the folders between, never through a link: ``root``
    and every folder below it on the way must be a real folder (a link there is refused, not followed).
    ``known``: folders already checked in this run (updated)."""
    known = set() if known is None else known
    rel = os.path.relpath(folder, root)
    if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise UnsafePath(f"refused to write into {folder}: it is not below {root}")
    path = root
    for name in [""] + ([] if rel == "." else rel.split("/")):
        path = f"{path}/{name}" if name else root
        if path in known:
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            try:
                os.mkdir(path)
            except FileExistsError:  # made by someone else meanwhile: look again
                st = os.lstat(path)
            else:
                known.add(path)
                continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"{path} is a link (to {os.readlink(path)}): vca never writes through links",
                             "remove it or collect into another LOCAL")
        if not stat.S_ISDIR(st.st_mode):
            raise Conflict(f"cannot make folder {folder}: {path} is a file")
        known.add(path)
