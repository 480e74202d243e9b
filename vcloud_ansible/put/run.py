"""Send a local file or folder to the nodes (``vca put LOCAL REMOTE``), the way collect brings files back.

The local side packs LOCAL once into a tar stream (gzip -1 unless the nodes are local lab nodes, which
share this machine's CPU), hashes it, and streams it to every node at once, one ssh session each. The
node side (node.sh) stores the stream, checks its size and sha256, unpacks it beside the destination and
moves it into place: into REMOTE when REMOTE ends with / (or, for a file, is a folder there), else as
REMOTE (a file replaced at once, an existing folder merged into: the same command twice gives the
same place, unlike ``cp -r``). REMOTE is absolute, ~/..., or relative to
the home folder. Nothing is ever written inside ~/vca (the releases, running or not, and their jobs):
refused here for the plain cases, and on each node after resolving links.
"""

from __future__ import annotations

import gzip
import hashlib
import shlex
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RemoteFailed, UsageError
from ..node import Node
from ..remote import ssh as sshexec
from ..state import ClusterState

NODE_SCRIPT = (Path(__file__).parent / "node.sh").read_text()


@dataclass
class PutOutcome:
    node: Node
    ok: bool
    path: str = ""  # where the node put it
    error: str = ""
    seconds: float = 0.0


@dataclass
class PutResult:
    local: Path
    remote: str
    files: int
    bytes: int  # of the stream sent to each node
    outcomes: list[PutOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def succeeded(self) -> list[PutOutcome]:
        return [o for o in self.outcomes if o.ok]

    def raise_for_failures(self) -> None:
        failed = {o.node.name: o.error for o in self.outcomes if not o.ok}
        if failed:
            raise RemoteFailed.naming("put", failed, len(self.outcomes),
                                      "the other nodes have the files; once fixed, run the same command with "
                                      "--node for these")


def check_remote(remote: str) -> str:
    """REMOTE as given, refused when empty, not text a path can hold, or plainly inside ~/vca (the nodes
    check again after resolving links and absolute paths)."""
    if not remote.strip():
        raise UsageError("REMOTE is empty", "vca put LOCAL REMOTE, e.g. vca put data.csv data/")
    if any(c in remote for c in "\0\n\r"):
        raise UsageError("REMOTE holds a line break or NUL", "give a plain path")
    parts = [p for p in remote.split("/") if p not in ("", ".")]
    if not remote.startswith("/") and parts[parts[:1] == ["~"]:][:1] == ["vca"]:
        raise UsageError(f"{remote} is inside ~/vca, where vca keeps the releases and their jobs",
                         "put it elsewhere (e.g. ~/data/); a job finds it by its absolute path")
    return remote


def check_local(local: str | Path) -> Path:
    """LOCAL, refused unless it is a file or folder (a link to one is followed)."""
    src = Path(local).expanduser()
    if not src.exists():
        raise UsageError(f"{local} does not exist", "give a file or folder to send")
    if not (src.is_file() or src.is_dir()):
        raise UsageError(f"{local} is not a file or folder", "give a file or folder to send")
    return src


def _pack(local: Path, out_dir: Path, compress: bool) -> tuple[Path, str, int, int, str]:
    """LOCAL as a tar stream whose one top entry is ``p``: (path, sha256, size, files, kind)."""
    kind = "dir" if local.is_dir() else "file"
    fd, name = tempfile.mkstemp(dir=out_dir, prefix=".vca-put-", suffix=".tar")
    path = Path(name)
    files = 0

    def count(info: tarfile.TarInfo) -> tarfile.TarInfo:
        nonlocal files
        files += info.isreg()
        return info

    try:
        with open(fd, "wb") as raw:
            if compress:
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz, \
                        tarfile.open(fileobj=gz, mode="w|") as tar:
                    tar.add(local, arcname="p", filter=count)
            else:
                with tarfile.open(fileobj=raw, mode="w|") as tar:
                    tar.add(local, arcname="p", filter=count)
        sha = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise UsageError(f"cannot read {local}: {exc.strerror or exc}", "fix its permissions") from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, sha.hexdigest(), path.stat().st_size, files, kind


def put_nodes(state: ClusterState, nodes: Sequence[Node], local: str | Path, remote: str, *,
              compress: bool, timeout: float | None = None, on_start: Callable[[int], None] | None = None,
              on_done: Callable[[PutOutcome], None] | None = None) -> PutResult:
    """Send ``local`` to ``nodes`` at ``remote``; one ssh session per node, all at once."""
    src = check_local(local)
    remote = check_remote(remote)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vca-put-") as tmp:
        stream, sha, size, files, kind = _pack(src, Path(tmp), compress)
        name = src.resolve().name or "root"
        args = " ".join(shlex.quote(a) for a in (remote, kind, name, sha, str(size), "gz" if compress else ""))
        command = f"sh -c {shlex.quote(NODE_SCRIPT)} vca-put {args}"
        if on_start:
            on_start(len(nodes))

        def one(node: Node) -> PutOutcome:
            outcome = _send(state, node, command, stream, timeout)
            if on_done:
                on_done(outcome)
            return outcome

        outcomes = sshexec.parallel(one, list(nodes))
    return PutResult(src, remote, files, size, outcomes, time.monotonic() - started)


def _send(state: ClusterState, node: Node, command: str, stream: Path, timeout: float | None) -> PutOutcome:
    t0 = time.monotonic()
    with stream.open("rb") as data, sshexec.spawn([*sshexec.ssh_command(state, node, "-T"), "--", command],
                                                  stdin=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return PutOutcome(node, False, error=f"timed out after {timeout:g} s", seconds=time.monotonic() - t0)
    text = out.decode(errors="replace")
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    seconds = time.monotonic() - t0
    if proc.returncode == 0 and fields.get("ok") == "1":
        return PutOutcome(node, True, path=fields.get("path", ""), seconds=seconds)
    why = fields.get("error") or err.decode(errors="replace").strip()[-300:] or f"exit {proc.returncode}"
    return PutOutcome(node, False, error=why, seconds=seconds)
