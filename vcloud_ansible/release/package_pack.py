"""Packing a folder's members into the reproducible tarball (the format is in the docstring of
vcloud_ansible.release.package): pax, sorted, fixed owner and mtime, gzip without a name or time, hashed
while it is written."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from vcloud_ansible.errors import EnvironmentProblem, UsageError

from .package_members import IGNORE_FILE, Member

DEFAULT_MTIME = 946684800  # 2000-01-01T00:00:00Z, see vcloud_ansible.release.package
GZIP_LEVEL = 6


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


def _tarinfo(member: Member, mtime: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.name)
    info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}.get(member.kind, tarfile.REGTYPE)
    info.mode = member.mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.linkname = member.target if member.kind == "symlink" else ""
    info.size = size
    return info


def pack_to_temp(members: Sequence[Member], out_dir: Path) -> tuple[Path, str, int]:
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


def _add(tar: tarfile.TarFile, member: Member, mtime: int) -> None:
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
