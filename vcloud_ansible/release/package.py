"""Packages: validate a folder or tarball and produce the exact tarball every node unpacks.

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
The launch script must be at the tarball's root (``./vcloud-launch`` is fine, ``hello/vcloud-launch``
is not: the nodes unpack the tarball as is into the release folder).
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import hashlib
import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from vcloud_ansible.errors import EnvironmentProblem, UsageError

LAUNCH_NAMES = ("vcloud-launch", "vca-launch")
TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", "CVS"})
IGNORE_FILE = ".vcaignore"
DEFAULT_MTIME = 946684800  # 2000-01-01T00:00:00Z, see the module docstring
GZIP_LEVEL = 6
CHUNK = 1 << 20

MKPKG_HINT = "make one with `vca mkpkg DIR`"
_SUFFIX_COMPRESSION = {".tar": "", ".tar.gz": "gz", ".tgz": "gz", ".tar.bz2": "bz2", ".tar.xz": "xz"}
_CANONICAL_SUFFIX = {"": ".tar", "gz": ".tar.gz", "bz2": ".tar.bz2", "xz": ".tar.xz"}
_MAGIC = ((b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
_MAX_LINK_HOPS = 40
_StreamMode = Literal["r|", "r|gz", "r|bz2", "r|xz"]
_STREAM_MODE: dict[str, _StreamMode] = {"": "r|", "gz": "r|gz", "bz2": "r|bz2", "xz": "r|xz"}

Kind = Literal["file", "dir", "symlink", "hardlink"]


@dataclass(frozen=True)
class PackedRelease:
    path: Path  # a tarball ready to send
    release_id: str  # first 12 hex chars of the sha256 of the tarball bytes
    launch: str  # "vcloud-launch" or "vca-launch"
    size: int  # bytes
    compression: str  # "gz" | "bz2" | "xz" | "": how the node unpacks it (tar -xzf / -xjf / -xJf / -xf)


@dataclass(frozen=True)
class _Member:
    """One entry of a package as the node will see it (folder or tarball alike)."""

    name: str  # relative POSIX path, no leading "./"
    kind: Kind
    mode: int  # permission bits as unpacked on the node
    target: str = ""  # link target (symlink: as written; hardlink: path from the root)
    source: Path | None = None  # the file to read, for folder members


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
        members, launch = _scan_folder(source)
        tmp, digest, size = _pack_to_temp(members, cache_dir)
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
    members, launch = _scan_folder(source_dir)
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
    tmp, digest, size = _pack_to_temp(members, out_dir)
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
# folders


def _scan_folder(root: Path) -> tuple[list[_Member], str]:
    """Every member of the folder that will be packed, sorted by path, validated; and the launch name."""
    rules = _read_ignore(root)
    own_output = re.compile(re.escape(root.resolve().name) + r"-[0-9a-f]{12}\.tar\.gz")
    members = sorted(_walk(root, "", rules, own_output), key=lambda m: m.name)
    launch = _validate(members, str(root), tarball=False)
    return members, launch


def _walk(root: Path, rel: str, rules: Sequence[_Rule], own_output: re.Pattern[str]) -> Iterator[_Member]:
    folder = root / rel if rel else root
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise UsageError(f"cannot read folder {folder}: {exc.strerror or exc}",
                         f"fix its permissions or list it in {IGNORE_FILE}") from exc
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        if entry.name in VCS_DIRS or _ignored(rules, name, is_dir):
            continue
        if not rel and own_output.fullmatch(entry.name):
            continue  # an earlier `vca mkpkg .` output: packing it would change the id every time
        member = _folder_member(Path(entry.path), name)
        yield member
        if member.kind == "dir":
            yield from _walk(root, name, rules, own_output)


def _folder_member(path: Path, name: str) -> _Member:
    _check_utf8(name, path)
    st = path.lstat()
    if stat.S_ISDIR(st.st_mode):
        return _Member(name, "dir", 0o755)
    if stat.S_ISREG(st.st_mode):
        return _Member(name, "file", 0o755 if st.st_mode & 0o111 else 0o644, source=path)
    if stat.S_ISLNK(st.st_mode):
        return _Member(name, "symlink", 0o777, target=os.readlink(path))
    what = "socket" if stat.S_ISSOCK(st.st_mode) else "fifo" if stat.S_ISFIFO(st.st_mode) else "device"
    raise UsageError(f"{path} is a {what}, which a package cannot hold",
                     f"remove it or list it in {IGNORE_FILE}")


def _check_utf8(name: str, path: Path) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"file name {path!s} is not valid UTF-8",
                         f"rename it or list it in {IGNORE_FILE}") from None


# ---------------------------------------------------------------------------------------------------
# .vcaignore


@dataclass(frozen=True)
class _Rule:
    pattern: str
    negate: bool
    dir_only: bool
    by_path: bool


def parse_ignore(text: str) -> list[_Rule]:
    """The rules of a ``.vcaignore`` (see the module docstring for the subset understood)."""
    rules: list[_Rule] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line[1:] if negate else line
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        by_path = "/" in line
        line = line.lstrip("/")
        if line:
            rules.append(_Rule(line, negate, dir_only, by_path))
    return rules


def _read_ignore(root: Path) -> list[_Rule]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    try:
        return parse_ignore(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}", "fix its permissions") from exc


def _ignored(rules: Sequence[_Rule], name: str, is_dir: bool) -> bool:
    """Whether the path ``name`` (relative to the root) is left out; the last matching rule wins."""
    basename = name.rsplit("/", 1)[-1]
    ignored = False
    for rule in rules:
        if rule.dir_only and not is_dir:
            continue
        if fnmatch.fnmatchcase(name if rule.by_path else basename, rule.pattern):
            ignored = not rule.negate
    return ignored


# ---------------------------------------------------------------------------------------------------
# validation shared by folders and tarballs


def _validate(members: Sequence[_Member], where: str, *, tarball: bool) -> str:
    """Check the links and the launch script; return the launch name."""
    if not any(m.kind != "dir" for m in members):
        raise UsageError(f"package {where} is empty", "add an executable vcloud-launch at its root")
    links: dict[str, str] = {}
    for m in members:
        if m.kind == "symlink" and links.setdefault(m.name, m.target) != m.target:
            raise UsageError(f"symlink {m.name} appears twice in {where} with different targets",
                             "a package must not redefine a link")
    for m in members:
        # unpacking d/x after a link d writes through the link (GNU tar follows it): x would land
        # where d points, and a link x relative to there can leave the package though d/x looks inside
        parts = m.name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in links:
                raise UsageError(f"{m.name} in {where} is inside the symlink {parent} (-> {links[parent]}), "
                                 "so unpacking would write through that link",
                                 f"store it under its real folder instead; {MKPKG_HINT}")
    for m in members:
        if m.kind == "symlink" and _resolve(m.name, links, where) is None:
            raise UsageError(f"symlink {m.name} -> {m.target} in {where} points outside the package",
                             "use a relative link to a file inside the package, or copy the file in")
    return _check_launch(members, links, where, tarball)


def _resolve(name: str, links: Mapping[str, str], where: str) -> str | None:
    """Where ``name`` leads once every link inside the package is followed (as on the node).

    None when it leaves the package (an absolute link or too many ``..``).
    """
    todo = list(reversed(name.split("/")))
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                return None
            done.pop()
            continue
        done.append(part)
        target = links.get("/".join(done))
        if target is None:
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            raise UsageError(f"symlink {name} in {where} loops", "fix or remove the link")
        if target.startswith("/"):
            return None
        done.pop()
        todo.extend(reversed(target.split("/")))
    return "/".join(done)


def _check_launch(members: Sequence[_Member], links: Mapping[str, str], where: str, tarball: bool) -> str:
    by_name = {m.name: m for m in members}
    launch = next((n for n in LAUNCH_NAMES if n in by_name), None)
    if launch is None:
        raise _no_launch(members, where, tarball)
    member = by_name[launch]
    if member.kind == "symlink":
        resolved = _resolve(launch, links, where)
        member = by_name.get(resolved or "", member)
        if member.kind == "symlink":
            raise UsageError(f"{launch} in {where} is a link to a missing file ({by_name[launch].target})",
                             "make it a regular executable file")
    if member.kind == "hardlink":
        member = by_name.get(member.target, member)
    if member.kind == "dir":
        raise UsageError(f"{launch} in {where} is a folder", "the launch script must be an executable file")
    if member.kind != "file":
        raise UsageError(f"{launch} in {where} is not a regular file", "make it a regular executable file")
    if not member.mode & 0o100:
        raise UsageError(f"{launch} in {where} is not executable", f"run `chmod +x {launch}` and pack again")
    return launch


def _no_launch(members: Sequence[_Member], where: str, tarball: bool) -> UsageError:
    tops = {m.name.split("/", 1)[0] for m in members}
    if len(tops) == 1:
        top = next(iter(tops))
        nested = [f"{top}/{n}" for n in LAUNCH_NAMES if any(m.name == f"{top}/{n}" for m in members)]
        if nested:
            hint = f"repack it without the folder: `vca mkpkg {top}`" if tarball else \
                f"give {Path(where) / top} as the package"
            return UsageError(f"{where} has its launch script in a folder ({nested[0]}), not at its root",
                              hint)
    hint = f"put an executable vcloud-launch at the tarball's root: {MKPKG_HINT}" if tarball else \
        "add an executable vcloud-launch script there (or vca-launch)"
    return UsageError(f"no vcloud-launch or vca-launch at the root of {where}", hint)


# ---------------------------------------------------------------------------------------------------
# packing


class _HashingWriter:
    """A write-only file object that hashes and counts what it forwards."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def _source_date() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return DEFAULT_MTIME
    if not value.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={value} is not a number of seconds", "unset it or fix it")
    return int(value)


def _tarinfo(member: _Member, mtime: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.name)
    info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}.get(member.kind, tarfile.REGTYPE)
    info.mode = member.mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.linkname = member.target if member.kind == "symlink" else ""
    info.size = size
    return info


def _pack_to_temp(members: Sequence[_Member], out_dir: Path) -> tuple[Path, str, int]:
    """Write the deterministic .tar.gz to a temporary file in ``out_dir``: (path, sha256 hex, size)."""
    mtime = _source_date()
    try:
        fd, name = tempfile.mkstemp(dir=out_dir, prefix=".vca-pack-", suffix=".tar.gz")
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write in {out_dir}: {exc.strerror or exc}",
                                 "pick another output folder, or fix its permissions") from exc
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as raw:
            writer = _HashingWriter(raw)
            with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=writer,
                               mtime=0) as gz, \
                    tarfile.TarFile(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for member in members:
                    _add(tar, member, mtime)
        return tmp, writer.sha.hexdigest(), writer.size
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _add(tar: tarfile.TarFile, member: _Member, mtime: int) -> None:
    if member.source is None:
        tar.addfile(_tarinfo(member, mtime, 0))
        return
    try:
        with member.source.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            tar.addfile(_tarinfo(member, mtime, size), f)
    except OSError as exc:
        raise UsageError(f"cannot read {member.source}: {exc.strerror or exc}",
                         f"fix its permissions, or list it in {IGNORE_FILE}; it must not change while packing"
                         ) from exc


def _settle(tmp: Path, target: Path) -> Path:
    """Move a finished temporary file to its content-addressed name (or drop it if already there)."""
    if target.exists():
        tmp.unlink()
    else:
        os.replace(tmp, target)
    return target


# ---------------------------------------------------------------------------------------------------
# tarballs


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
        launch = _validate(_tar_members(tmp, compression, str(source)), str(source), tarball=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if _SUFFIX_COMPRESSION[suffix] != compression:
        suffix = _CANONICAL_SUFFIX[compression]
    release_id = digest[:12]
    return PackedRelease(_settle(tmp, cache_dir / f"{release_id}{suffix}"), release_id, launch, size,
                         compression)


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


def _tar_members(path: Path, compression: str, where: str) -> list[_Member]:
    """Read the tarball as a stream (no extraction) and turn its members into checked _Members."""
    members: list[_Member] = []
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode=_STREAM_MODE[compression]) as tar:
            for info in tar:
                member = _tar_member(info, seen, where)
                if member is not None:
                    members.append(member)
                    if member.kind != "dir":
                        seen.add(member.name)
    except UsageError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise UsageError(f"tarball {where} is unreadable or corrupt ({exc})",
                         f"check the file, or {MKPKG_HINT}") from exc
    return members


def _member_name(raw: str, where: str) -> str:
    if raw.startswith("/"):
        raise UsageError(f"tarball {where} has a member with an absolute path: {raw}", MKPKG_HINT)
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"tarball {where} has a member with a '..' in its path: {raw}", MKPKG_HINT)
    return "/".join(parts)


def _tar_member(info: tarfile.TarInfo, seen: set[str], where: str) -> _Member | None:
    name = _member_name(info.name, where)
    if info.isdir():
        return _Member(name, "dir", info.mode & 0o7777) if name else None
    if not name:
        raise UsageError(f"tarball {where} has a non-folder member for its root: {info.name}", MKPKG_HINT)
    if info.isreg():
        return _Member(name, "file", info.mode & 0o7777)
    if info.issym():
        return _Member(name, "symlink", 0o777, target=info.linkname)
    if info.islnk():
        return _Member(name, "hardlink", info.mode & 0o7777, target=_hardlink_target(info, seen, where))
    what = "fifo" if info.isfifo() else "device" if info.ischr() or info.isblk() else "special file"
    raise UsageError(f"tarball {where} has a {what} member: {info.name}",
                     "a package holds only files, folders and links")


def _hardlink_target(info: tarfile.TarInfo, seen: set[str], where: str) -> str:
    raw = info.linkname
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    target = "/".join(parts)
    if raw.startswith("/") or ".." in parts:
        raise UsageError(
            f"tarball {where} has a hard link pointing outside the package: {info.name} -> {raw}", MKPKG_HINT)
    if target not in seen:
        raise UsageError(
            f"tarball {where} has a hard link to no earlier file of the package: {info.name} -> {raw}",
            MKPKG_HINT)
    return target


__all__ = ["LAUNCH_NAMES", "TARBALL_SUFFIXES", "PackedRelease", "mkpkg", "parse_ignore", "prepare",
           "tarball_suffix"]
