"""Packages: validate a folder or tarball and produce the exact tarball every node unpacks.

This module is the entry (``prepare``, ``mkpkg`` and its output file, the release cache, tarballs kept
as given); what a package holds and its checks are in vcloud_ansible.release.package_members, packing a
folder in vcloud_ansible.release.package_pack. The rules, for all three:

A package is a folder or tarball with an executable ``vcloud-launch`` (or ``vca-launch``) at its root.
Everything wrong with it is reported here as a one-line :class:`UsageError`, before anything is sent.

Folders are packed reproducibly (``vca mkpkg DIR`` does the same and keeps the file):

* entries sorted by their path relative to the root, no entry for the root itself, POSIX.1-2001
  (pax) format; owner and group 0 with empty names;
* every mtime is :data:`DEFAULT_MTIME` (2000-01-01 00:00:00 UTC) or ``SOURCE_DATE_EPOCH`` when set.
  Not 0: some ``tar`` builds warn "implausibly old time stamp" on 1970 and a warning on every node
  would look like a failure in the logs. Any fixed value keeps the output reproducible;
* modes: 0755 for directories and for files with any execute bit, else 0644;
* gzip level 6 (zlib's default: a good size/speed balance for code and data that is sent to
  many nodes; level 1 would be as reproducible but bigger, and the bytes sent to every node matter
  more than the pack time), gzip header mtime 0 and no file name. The same folder gives byte-identical
  output, hence the same release id, with the same zlib; a different zlib build can give other
  (equally valid) bytes and thus another id, which only means the package is sent again;
* symlinks are kept when they are relative and resolve inside the package (following links inside
  the package, as the node will); absolute links and links leaving the package are refused;
  sockets, fifos and devices are refused (list them in ``.vcaignore`` to leave them out).

Left out when packing a folder: version-control folders (``.git``, ``.hg``, ``.svn``, ``.bzr``,
``_darcs``, ``CVS``) anywhere, and what ``.vcaignore`` at the package root lists. ``.vcaignore``
understands this subset of gitignore:

* blank lines and lines starting with ``#`` are ignored; trailing spaces are stripped;
* a pattern containing ``/`` (other than a trailing one) is matched with :func:`fnmatch.fnmatchcase`
  against the path relative to the package root (a leading ``/`` is dropped; note ``*`` also matches
  ``/`` here, and ``**`` has no special meaning);
* any other pattern is matched against the name of every file and folder at any depth;
* a trailing ``/`` makes the pattern match folders only (a symlink to a folder is not a folder);
* ``!pattern`` includes again what an earlier pattern left out; the last matching line wins;
* a left-out folder is not entered, so nothing inside it can be included again (as in git).

Also left out: files at the root named like ``vca mkpkg``'s own output (``<dirname>-<12 hex>.tar.gz``),
so ``cd app && vca mkpkg .`` twice does not pack the first tarball into the second.

``.vcaignore`` itself is packed like any other file (it is harmless on the nodes); list
``.vcaignore`` in it to leave it out.

Tarballs (:data:`TARBALL_SUFFIXES`) are never repacked: the release id is the hash of their bytes.
They are read as a stream (never extracted here), and refused when a member has an absolute path or
a ``..`` component, is a device or fifo, or is a symbolic or hard link pointing outside the package.
The launch script must be at the tarball's root (``./vcloud-launch`` is fine): the nodes unpack the
tarball as is into the release folder. One exception, the old ``mkpkg``'s shape (every member in one
folder, ``hello/vcloud-launch``): that tarball is repacked without the folder, with a note
(package_legacy).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from vcloud_ansible.errors import EnvironmentProblem, UsageError

from .package_legacy import old_mkpkg_folder, strip_folder
from .package_members import LAUNCH_NAMES, MKPKG_HINT, parse_ignore, scan_folder, tar_members, validate
from .package_pack import DEFAULT_MTIME, pack_to_temp

TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
CHUNK = 1 << 20

_SUFFIX_COMPRESSION = {".tar": "", ".tar.gz": "gz", ".tgz": "gz", ".tar.bz2": "bz2", ".tar.xz": "xz"}
_CANONICAL_SUFFIX = {"": ".tar", "gz": ".tar.gz", "bz2": ".tar.bz2", "xz": ".tar.xz"}
_MAGIC = ((b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))


@dataclass(frozen=True)
class PackedRelease:
    path: Path  # a tarball ready to send
    release_id: str  # first 12 hex chars of the sha256 of the tarball bytes
    launch: str  # "vcloud-launch" or "vca-launch"
    size: int  # bytes
    compression: str  # "gz" | "bz2" | "xz" | "": how the node unpacks it (tar -xzf / -xjf / -xJf / -xf)
    note: str = ""  # something the user should know about the package (an old mkpkg tarball repacked)


# ---------------------------------------------------------------------------------------------------
# public API


def prepare(source: Path, cache_dir: Path) -> PackedRelease:
    """Validate a package (folder or tarball) and return the tarball to send.

    A folder is packed into ``cache_dir/<release_id>.tar.gz`` (reused when already there). A tarball
    is validated and copied as is into ``cache_dir/<release_id><suffix>``, so the cluster keeps the
    exact bytes for nodes added later. Raises :class:`UsageError` on any problem with the package.
    """
    kind = _source_kind(source)
    _private_dir(cache_dir)
    if kind == "dir":
        members, launch = scan_folder(source)
        tmp, digest, size = pack_to_temp(members, cache_dir)
        release_id = digest[:12]
        return PackedRelease(_settle(tmp, cache_dir / f"{release_id}.tar.gz"), release_id, launch, size, "gz")
    return _prepare_tarball(source, cache_dir)


def mkpkg(source_dir: Path, out: Path | None = None, *, force: bool = False) -> PackedRelease:
    """Pack a folder reproducibly (``vca mkpkg DIR``).

    The default output is ``./<dirname>-<release_id>.tar.gz``; ``out`` may name a file or an
    existing folder to write that default name into. The output is written to a temporary file beside
    it and renamed, so it is never half-written. Refused: a target that is not a regular file (device,
    folder, fifo, socket, a link to one or to nothing), one inside the package folder (other than the
    default name at its root, which packing leaves out), and an existing file with other bytes unless
    ``force``. A symlink to a regular file is written through (the link stays).
    """
    if _source_kind(source_dir) != "dir":
        raise UsageError(f"{source_dir} is not a folder", "mkpkg packs a folder; a tarball is used as is")
    members, launch = scan_folder(source_dir)
    root = source_dir.resolve()
    if out is None or out.is_dir():
        out_dir, target = (out if out is not None else Path.cwd()), None
    else:
        out_dir, target = out.parent, out
    if not out_dir.is_dir():
        raise UsageError(f"cannot write {out}: folder {out_dir} does not exist",
                         "create it or pick another path")
    if target is not None:  # refuse a bad target before packing; checked again right before the rename
        out_dir = (_output_target(target, root, force, None) or target).parent
    tmp, digest, size = pack_to_temp(members, out_dir)
    try:
        release_id = digest[:12]
        if target is None:
            target = out_dir / f"{root.name}-{release_id}.tar.gz"
        real = _output_target(target, root, force, digest)
        if real is None:  # the same bytes are there already
            tmp.unlink()
        else:
            try:
                tmp.chmod(0o644)  # mkstemp made it private; this one is the user's to share
                os.replace(tmp, real)
            except OSError as exc:
                raise EnvironmentProblem(f"cannot write {target}: {exc.strerror or exc}",
                                         "pick another path with -o, or fix its permissions") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return PackedRelease(target, release_id, launch, size, "gz")


def _output_target(target: Path, root: Path, force: bool, digest: str | None) -> Path | None:
    """The file ``vca mkpkg`` may write for ``target`` (a link to a file is followed), or refuse it.

    With ``digest`` (the packed bytes' sha256), an existing file holding those very bytes is no
    conflict: None means there is nothing to write.
    """
    what = _not_regular(target)
    if what:
        raise UsageError(f"cannot write {target}: it is {what}, not a regular file",
                         "give the path of a new or existing tarball with -o")
    real = target.resolve()
    if real.is_relative_to(root) and not (
            real.parent == root and re.fullmatch(re.escape(root.name) + r"-[0-9a-f]{12}\.tar\.gz", real.name)):
        raise UsageError(f"cannot write {target}: it is inside the package folder {root}",
                         "write the tarball outside the folder it packs (-o ../NAME.tar.gz)")
    if real.exists() and not force:
        if digest is None:
            return real  # decided once packed: the same bytes are no conflict
        if not _holds(real, digest):
            raise UsageError(f"cannot write {target}: it already exists",
                             "pass --force to replace it, or pick another path with -o")
        return None
    return real


def _not_regular(path: Path) -> str:
    """What ``path`` is when it exists and is not a regular file (following links); "" otherwise."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "a link to nothing" if path.is_symlink() else ""
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(st.st_mode):
        return ""
    kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a fifo" if stat.S_ISFIFO(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
    return f"{kind} (through a link)" if path.is_symlink() else kind


def _holds(path: Path, digest: str) -> bool:
    sha = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                sha.update(chunk)
    except OSError:
        return False
    return sha.hexdigest() == digest


def _private_dir(folder: Path) -> None:
    """Create ``folder`` and its missing parents 0700 whatever the umask; an existing folder of ours
    that others may write to (and that is no shared sticky folder like /tmp) loses that write bit."""
    missing: list[Path] = []
    p = folder
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):
                d.mkdir(mode=0o700)
        st = folder.stat()
        if st.st_uid == os.getuid() and not st.st_mode & stat.S_ISVTX and st.st_mode & 0o022:
            folder.chmod(stat.S_IMODE(st.st_mode) & ~0o022)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create the package folder {folder}: {exc.strerror or exc}",
                                 "fix its permissions or free some space") from exc


# ---------------------------------------------------------------------------------------------------
# source kind


def tarball_suffix(path: Path) -> str | None:
    """The supported tarball suffix ``path`` ends with, or None."""
    lower = path.name.lower()
    return next((s for s in sorted(TARBALL_SUFFIXES, key=len, reverse=True) if lower.endswith(s)), None)


def _source_kind(source: Path) -> Literal["dir", "tarball"]:
    if not source.exists():
        raise UsageError(f"package {source} does not exist", "give the path of a folder or tarball")
    if source.is_dir():
        return "dir"
    if source.is_file() and tarball_suffix(source) is not None:
        return "tarball"
    raise UsageError(
        f"package {source} is not a folder or a tarball ({', '.join(TARBALL_SUFFIXES)})",
        f"give the package folder, or {MKPKG_HINT}",
    )


# ---------------------------------------------------------------------------------------------------
# the release cache and tarballs as given


def _settle(tmp: Path, target: Path) -> Path:
    """Move a finished temporary file to its content-addressed name (or drop it if already there)."""
    if target.exists():
        tmp.unlink()
    else:
        os.replace(tmp, target)
    return target


def _prepare_tarball(source: Path, cache_dir: Path) -> PackedRelease:
    """Copy the tarball into the cache while hashing it, validate the copy, name it by its hash.

    Validating the copy (not the original) guarantees the bytes checked are the bytes sent, even if
    the user rewrites the file meanwhile; a hard link would not (``tar -czf`` rewrites in place).
    """
    suffix = tarball_suffix(source) or ".tar"
    try:
        fd, name = tempfile.mkstemp(dir=cache_dir, prefix=".vca-copy-", suffix=suffix)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write in {cache_dir}: {exc.strerror or exc}",
                                 "fix its permissions or free some space") from exc
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _copy_hashing(source, out)
        compression = _sniff(tmp, source, size)
        members = tar_members(tmp, compression, str(source))
        note = ""
        top = old_mkpkg_folder(members)
        if top:  # the old mkpkg's shape: repacked without the folder (package_legacy)
            stripped, digest, size = strip_folder(tmp, compression, top, cache_dir)
            tmp.unlink()
            tmp, compression, suffix = stripped, "gz", ".tar.gz"
            members = tar_members(tmp, compression, str(source))
            note = (f"{source} holds its package in the folder {top}/ (as the old mkpkg made it): "
                    "repacked without that folder")
        launch = validate(members, str(source), tarball=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if _SUFFIX_COMPRESSION[suffix] != compression:
        suffix = _CANONICAL_SUFFIX[compression]
    release_id = digest[:12]
    return PackedRelease(_settle(tmp, cache_dir / f"{release_id}{suffix}"), release_id, launch, size,
                         compression, note)


def _copy_hashing(source: Path, out: IO[bytes]) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    try:
        with source.open("rb") as f:
            while chunk := f.read(CHUNK):
                sha.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except OSError as exc:
        raise UsageError(f"cannot read tarball {source}: {exc.strerror or exc}", "fix its permissions"
                         ) from exc
    return sha.hexdigest(), size


def _sniff(path: Path, source: Path, size: int) -> str:
    """The compression of the tarball, from its first bytes (not from its name)."""
    if size == 0:
        raise UsageError(f"tarball {source} is empty", MKPKG_HINT)
    with path.open("rb") as f:
        head = f.read(8)
    return next((comp for magic, comp in _MAGIC if head.startswith(magic)), "")


__all__ = ["DEFAULT_MTIME", "LAUNCH_NAMES", "TARBALL_SUFFIXES", "PackedRelease", "mkpkg", "parse_ignore", "prepare",
           "tarball_suffix"]
