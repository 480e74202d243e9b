"""What a package holds: its members, read from a folder (leaving out what ``.vcaignore`` lists) or
from a tarball (as a stream, never extracted), and checked the same way for both: links stay inside the
package, the launch script is there and executable. The rules are in vcloud_ansible.release.package's
docstring; every problem is a one-line UsageError.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vcloud_ansible.errors import UsageError

LAUNCH_NAMES = ("vcloud-launch", "vca-launch")
VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", "CVS"})
IGNORE_FILE = ".vcaignore"
MKPKG_HINT = "make one with `vca mkpkg DIR`"
_MAX_LINK_HOPS = 40

_StreamMode = Literal["r|", "r|gz", "r|bz2", "r|xz"]
_STREAM_MODE: dict[str, _StreamMode] = {"": "r|", "gz": "r|gz", "bz2": "r|bz2", "xz": "r|xz"}

Kind = Literal["file", "dir", "symlink", "hardlink"]


@dataclass(frozen=True)
class Member:
    """One entry of a package as the node will see it (folder or tarball alike)."""

    name: str  # relative POSIX path, no leading "./"
    kind: Kind
    mode: int  # permission bits as unpacked on the node
    target: str = ""  # link target (symlink: as written; hardlink: path from the root)
    source: Path | None = None  # the file to read, for folder members


# ---------------------------------------------------------------------------------------------------
# folders


def scan_folder(root: Path) -> tuple[list[Member], str]:
    """Every member of the folder that will be packed, sorted by path, validated; and the launch name."""
    rules = _read_ignore(root)
    own_output = re.compile(re.escape(root.resolve().name) + r"-[0-9a-f]{12}\.tar\.gz")
    members = sorted(_walk(root, "", rules, own_output), key=lambda m: m.name)
    launch = validate(members, str(root), tarball=False)
    return members, launch


def _walk(root: Path, rel: str, rules: Sequence[_Rule], own_output: re.Pattern[str]) -> Iterator[Member]:
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


def _folder_member(path: Path, name: str) -> Member:
    _check_utf8(name, path)
    st = path.lstat()
    if stat.S_ISDIR(st.st_mode):
        return Member(name, "dir", 0o755)
    if stat.S_ISREG(st.st_mode):
        return Member(name, "file", 0o755 if st.st_mode & 0o111 else 0o644, source=path)
    if stat.S_ISLNK(st.st_mode):
        return Member(name, "symlink", 0o777, target=os.readlink(path))
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
# tarballs


def tar_members(path: Path, compression: str, where: str) -> list[Member]:
    """Read the tarball as a stream (no extraction) and turn its members into checked _Members."""
    members: list[Member] = []
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


def _tar_member(info: tarfile.TarInfo, seen: set[str], where: str) -> Member | None:
    name = _member_name(info.name, where)
    if info.isdir():
        return Member(name, "dir", info.mode & 0o7777) if name else None
    if not name:
        raise UsageError(f"tarball {where} has a non-folder member for its root: {info.name}", MKPKG_HINT)
    if info.isreg():
        return Member(name, "file", info.mode & 0o7777)
    if info.issym():
        return Member(name, "symlink", 0o777, target=info.linkname)
    if info.islnk():
        return Member(name, "hardlink", info.mode & 0o7777, target=_hardlink_target(info, seen, where))
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


# ---------------------------------------------------------------------------------------------------
# checks shared by folders and tarballs


def validate(members: Sequence[Member], where: str, *, tarball: bool) -> str:
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


def _check_launch(members: Sequence[Member], links: Mapping[str, str], where: str, tarball: bool) -> str:
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


def _no_launch(members: Sequence[Member], where: str, tarball: bool) -> UsageError:
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
