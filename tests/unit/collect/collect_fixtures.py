"""Shared by the collect unit tests: sample archives, what a node answers, one node's unpacking,
a shell that plays the node here."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from vcloud_ansible.collect.layout import Layout
from vcloud_ansible.collect.node_script import Probe
from vcloud_ansible.collect.outcome import NodeInfo
from vcloud_ansible.collect.receive import NodeCollector
from vcloud_ansible.collect.remote_path import RemoteSpec
from vcloud_ansible.collect.transport import extract_file

NODE = NodeInfo("c-3", 3, "i-0abc")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def staged(tmp: Path, data: bytes) -> str:
    f = tmp / f"staged-{len(list(tmp.iterdir()))}"
    f.write_bytes(data)
    return str(f)


def tarball(path: Path, members: list[tuple[str, bytes | None, str]]) -> Path:
    """(name, data, link): data None with a link makes a symlink, with link "fifo" a FIFO."""
    with tarfile.open(path, "w") as tf:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if data is None and link == "fifo":
                info.type = tarfile.FIFOTYPE
                tf.addfile(info)
            elif data is None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tf.addfile(info, io.BytesIO(data))
    return path


def probe(base: str, files: dict[str, bytes]) -> Probe:
    return Probe(host="c-3", base=base, roots=[base + "/results"],
                 files={k: sha(v) for k, v in files.items()}, complete=True, compression="none")


def finish(tmp: Path, p: Probe, archive: Path, overwrite: bool = False) -> tuple[Any, Path]:
    layout = Layout.make(tmp / "local")
    layout.prepare()
    collector = NodeCollector(layout, RemoteSpec.parse("results"), NODE, overwrite)
    return collector.finish(p, functools.partial(extract_file, archive, "none"), {}), layout.local / "c-3"


def local_shell(home: Path) -> Any:
    def shell(cmd: str, stdin: str | None) -> tuple[int, str, str]:
        r = subprocess.run(["sh", "-c", cmd], input=(stdin or "").encode(), capture_output=True,
                           env={**os.environ, "HOME": str(home)}, check=False)
        return r.returncode, r.stdout.decode("utf-8", "surrogateescape"), r.stderr.decode(errors="replace")
    return shell
