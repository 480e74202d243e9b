"""Tarballs made by the old `mkpkg` script: one top-level folder holding ``vcloud-launch``.

The old scripts packed ``tar czf app.tar.gz app/``, so the launch script sat at ``app/vcloud-launch``;
the nodes unpack a release as is, so vca would find no launch script at the release's root. Such a
tarball is accepted: it is repacked without its top folder (a gzip tarball with no timestamp in its
header, so the same old tarball always gives the same release id) and the user gets a note saying so.
Only exactly that shape is repacked: every member inside one folder, the launch script directly in it.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .package_members import _STREAM_MODE, LAUNCH_NAMES, Member


def old_mkpkg_folder(members: Sequence[Member]) -> str | None:
    """The one top-level folder of an old `mkpkg` tarball (``app`` for ``app/vcloud-launch``), else None."""
    names = [m.name for m in members]
    if not names or any(n in LAUNCH_NAMES for n in names):
        return None
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1:
        return None
    top = tops.pop()
    if any(n == top and m.kind != "dir" for n, m in zip(names, members, strict=True)):
        return None
    return top if any(f"{top}/{launch}" in names for launch in LAUNCH_NAMES) else None


def _strip(name: str, top: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts[1:]) if parts and parts[0] == top else "/".join(parts)


def strip_folder(path: Path, compression: str, top: str, out_dir: Path) -> tuple[Path, str, int]:
    """Repack ``path`` without its top folder ``top`` into a gzip tarball in ``out_dir``: (path, sha256, size).
    The members were checked (tar_members) before; their order, modes, owners and times are kept."""
    fd, name = tempfile.mkstemp(dir=out_dir, prefix=".vca-strip-", suffix=".tar.gz")
    out = Path(name)
    try:
        with open(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
                tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as dst, \
                tarfile.open(path, mode=_STREAM_MODE[compression]) as src:
            for info in src:
                new = _strip(info.name, top)
                if not new:  # the folder itself
                    continue
                data = src.extractfile(info) if info.isreg() else None
                info.name = new
                if info.islnk():
                    info.linkname = _strip(info.linkname, top)
                dst.addfile(info, data)
        sha = hashlib.sha256()
        with out.open("rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
        return out, sha.hexdigest(), out.stat().st_size
    except BaseException:
        out.unlink(missing_ok=True)
        raise
