"""How ``vca collect`` and the ``vca_collect`` action reach a node: the node script's output and archive
either through a temporary file fetched over Ansible's open connection, or streamed through one ssh.

What the node runs is vcloud_ansible.collect.node_script; what the controller does with the answer,
vcloud_ansible.collect.receive; only the transport is here.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import select
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from ..node import Node
from ..remote.ssh import OWN_CONNECTION, parallel, spawn, ssh_command
from ..state import ClusterState
from .errors import CollectError
from .layout import Layout
from .manifest import Manifest, record_outcome, record_outcomes
from .node_script import Probe, compressors, node_script
from .outcome import NodeInfo, NodeOutcome
from .receive import Extract, NodeCollector
from .remote_path import RemoteSpec

_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 20  # the default limit of /proc/sys/fs/pipe-max-size


def extract_file(path: Path, compression: str, staging: Path) -> str:
    """Unpack a fetched archive file into ``staging`` (see ``extract``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return extract(fd, compression, staging)
    finally:
        os.close(fd)


# -- one node, start to end ------------------------------------------------------------------------------

Shell = Callable[[str, str | None], tuple[int, str, str]]  # (command, stdin) -> (rc, stdout, stderr)
Fetch = Callable[[str, Path], None]  # (remote file, local file)


def collect_node(layout: Layout, spec: RemoteSpec, node: NodeInfo, *, shell: Shell, fetch: Fetch,
                 overwrite: bool = False, compression: str = "auto") -> NodeOutcome:
    """Collect from one node over an open connection (the vca_collect action's ``shell`` and ``fetch``):
    the archive waits in a temporary file on the node until it is fetched. Records the outcome in the
    manifest. Connection errors propagate (the caller records them)."""
    layout.prepare()
    collector = NodeCollector(layout, spec, node, overwrite)
    held = collector.held(Manifest.load(layout.manifest_path))
    rc, stdout, stderr = shell("sh -s", node_script(spec, held, compressors(compression)))
    probe = Probe.parse(stdout)
    if rc != 0 and not probe.error:
        probe.error = f"the collect script failed (exit {rc}): {stderr.strip()[-300:]}"
    fetch_dir = Path(tempfile.mkdtemp(prefix=f".vca-fetch-{node.dir_name}-", dir=layout.base))
    try:
        opener: Extract | None = None
        if probe.archive and not probe.error:
            archive = fetch_dir / "data"
            fetch(probe.archive, archive)
            collector.outcome.archive_bytes = archive.stat().st_size
            opener = functools.partial(extract_file, archive, probe.compression)
        if probe.tmp.startswith("/") and "/.collect." in probe.tmp and not probe.error:
            shell(f"rm -rf {shlex.quote(probe.tmp)}", None)
        outcome = collector.finish(probe, opener, held)
    finally:
        shutil.rmtree(fetch_dir, ignore_errors=True)
    record_outcome(layout, spec, outcome)
    return outcome


def collect_node_ssh(layout: Layout, spec: RemoteSpec, node: NodeInfo, ssh_argv: Sequence[str], *,
                     overwrite: bool = False, compression: str = "auto", timeout: float | None = None,
                     manifest: Manifest | None = None, same_machine: bool = False) -> NodeOutcome:
    """Collect from one node through one ``ssh`` process (``ssh_argv`` + the command): the records and
    then the archive arrive on its stdout, unpacked while the node still sends. The caller records the
    outcome (``record_outcomes``); ``manifest``: as loaded before the run (files already held)."""
    layout.prepare()
    collector = NodeCollector(layout, spec, node, overwrite)
    held = collector.held(manifest or Manifest.load(layout.manifest_path))
    script = node_script(spec, held, compressors(compression, same_machine), stream=True).encode()
    with tempfile.TemporaryFile() as err, _SshStream([*ssh_argv, "sh -s"], script, err, timeout) as ssh:
        probe = Probe.parse(ssh.read_records().decode("utf-8", "surrogateescape"))
        opener = functools.partial(extract, ssh.stdout_fd, probe.compression, adopt=ssh.adopt) if probe.stream else None
        if not probe.error and probe.complete:
            collector.finish(probe, opener, held)
        rc = ssh.close()
        err.seek(0)
        stderr = err.read().decode(errors="replace").strip()
    o = collector.outcome
    o.hostname = o.hostname or probe.host
    if probe.error:
        o.errors.append(probe.error)
    elif ssh.timed_out:
        o.errors.insert(0, f"timed out after {timeout:.0f} s")
    elif not probe.complete:
        why = stderr.splitlines()[-1] if stderr else f"exit {rc}"
        o.errors.insert(0, f"unreachable: {why}" if rc == 255 else f"the collect script failed: {why}")
    return o


class _SshStream:
    """One ssh process. The script goes to its stdin from a thread (a long script never blocks against
    unread output). Its stdout is read unbuffered up to the end of the records, so the archive that
    follows can go straight from the pipe into the decompressor, past Python."""

    def __init__(self, argv: Sequence[str], script: bytes, err: IO[bytes], timeout: float | None) -> None:
        self.proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, bufsize=0)
        assert self.proc.stdout is not None
        self.stdout_fd = self.proc.stdout.fileno()
        # A roomy pipe: ssh writes what arrives at once instead of holding it in its own buffers,
        # which it grows, shifts and wipes (that cost ssh a third more CPU than scp's).
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.stdout_fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self.timed_out = False
        self._adopted: list[subprocess.Popen[bytes]] = []
        self._feeder = threading.Thread(target=self._feed, args=(script,), daemon=True)
        self._feeder.start()
        self._timer = threading.Timer(timeout, self._expire) if timeout else None
        if self._timer:
            self._timer.start()

    def __enter__(self) -> _SshStream:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.close()

    def _feed(self, script: bytes) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(script)
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def _expire(self) -> None:
        self.timed_out = True
        for proc in (self.proc, *self._adopted):
            with contextlib.suppress(OSError):
                proc.kill()

    def adopt(self, proc: subprocess.Popen[bytes]) -> None:
        """``proc`` reads this stream: it is killed too when the time is up."""
        self._adopted.append(proc)
        if self.timed_out:
            proc.kill()

    def _read(self, n: int) -> bytes:
        """Up to ``n`` bytes; b"" at the end, or once the time is up even if something (a child of the
        remote command, a control master) still holds the pipe open."""
        while not self.timed_out:
            ready, _, _ = select.select([self.stdout_fd], [], [], 0.25)
            if ready:
                return os.read(self.stdout_fd, n)
        return b""

    def read_records(self) -> bytes:
        """The records: ``<bytes>\\n`` and exactly that many bytes, or (a node that failed before it could
        count) everything up to the end."""
        head = b""
        while not head.endswith(b"\n") and len(head) < 24:
            byte = self._read(1)
            if not byte:
                return head
            head += byte
            if not head.strip().isdigit() and not head.endswith(b"\n"):
                break
        if not head.endswith(b"\n") or not head.strip().isdigit():
            return head + self._read_all()
        want = int(head)
        parts: list[bytes] = []
        while want > 0:
            chunk = self._read(min(want, _CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            want -= len(chunk)
        return b"".join(parts)

    def _read_all(self) -> bytes:
        parts = []
        while chunk := self._read(_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> int:
        with contextlib.suppress(OSError, ValueError):
            self._read_all()
        if self.timed_out:
            self.proc.kill()
        rc = self.proc.wait()
        if self._timer:
            self._timer.cancel()
        self._feeder.join(timeout=1)  # a daemon thread: never wait long for a dead peer
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return rc


_TAR_FLAGS = {"zstd": ["--zstd"], "gz": ["-z"], "none": []}


def extract(source: int, compression: str, staging: Path, *,
            adopt: Callable[[subprocess.Popen[bytes]], None] | None = None) -> str:
    """Unpack the archive on the file descriptor ``source`` (left open) into the empty folder ``staging``
    with the local tar, which reads the descriptor itself: the bytes never pass through Python (which,
    with one thread per node under the GIL, made ssh buffer and copy). tar keeps names inside
    ``staging``; the caller takes only the listed regular files from there. Returns "" or tar's
    complaint. ``adopt``: told about the tar process (to kill it when the time is up)."""
    flags = _TAR_FLAGS.get(compression)
    if flags is None:
        raise CollectError(f"unknown archive compression {compression!r}")
    tar = shutil.which("tar")
    if tar is None or (compression == "zstd" and shutil.which("zstd") is None):
        raise CollectError("this machine needs tar (and zstd for zstd archives) to unpack what nodes send")
    with tempfile.TemporaryFile() as err:
        proc = spawn([tar, "-x", "-f", "-", "-C", str(staging), "--no-same-owner", "--no-same-permissions",
                      "--no-overwrite-dir", *flags], stdin=source, stdout=subprocess.DEVNULL, stderr=err)
        if adopt:
            adopt(proc)
        rc = proc.wait()
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
    return f"tar exited {rc}: {text[-300:]}" if rc else ""


def collect_from_nodes(state: ClusterState, nodes: Sequence[Node], layout: Layout, spec: RemoteSpec, *,
                       overwrite: bool = False, compression: str = "auto", timeout: float | None = None,
                       on_done: Callable[[NodeOutcome], None] | None = None) -> list[NodeOutcome]:
    """Collect from every node at once, one ssh stream each, through the cluster's ssh_config.
    Outcomes in node order; all recorded in the manifest in one write at the end.

    Threads suffice: the bytes go through ssh and zstd processes and hashlib, which release the GIL
    (worker processes measured no faster on 8 nodes sharing 2 cores).
    """
    layout.prepare()
    compressors(compression)  # a bad choice fails before any node is touched
    if not nodes:
        return []
    same_machine = state.load().provider == "local"
    manifest = Manifest.load(layout.manifest_path)

    def one(n: Node) -> NodeOutcome:
        info = NodeInfo(n.name, n.index, n.instance_id)
        try:
            o = collect_node_ssh(layout, spec, info, [*ssh_command(state, n, *OWN_CONNECTION), "--"],
                                 overwrite=overwrite, compression=compression, timeout=timeout,
                                 manifest=manifest, same_machine=same_machine)
        except Exception as exc:  # one node's surprise must not lose the others' results
            o = NodeOutcome(info, errors=[f"{type(exc).__name__}: {exc}"])
        if on_done:
            on_done(o)
        return o

    outcomes = parallel(one, nodes)
    record_outcomes(layout, spec, outcomes)
    return outcomes
