"""Commands on nodes over plain SSH (through the cluster's ssh_config), in parallel and bounded.

Used for `vca exec`, `vca connect`, status probes and the wait for SSH after provisioning: one ssh
round trip costs milliseconds, an Ansible module run costs a Python start on the node.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import ProviderError
from ..node import Node
from ..state import ClusterState

MAX_PARALLEL = 32  # each ssh holds a few descriptors; stay far below the open-files limit
# For bulk transfers (inject, collect): a connection of its own per node, never through a control
# master. A master would relay every byte through one more process, and a node that died under an old
# master (from provisioning, or an earlier command) keeps the session hanging until ServerAlive gives
# up, a minute later; a fresh connection fails within ConnectTimeout.
OWN_CONNECTION = ("-T", "-o", "ControlMaster=no", "-o", "ControlPath=none")


T = TypeVar("T")
R = TypeVar("R")

# The processes (ssh, tar) that parallel()'s threads wait on. An interrupt (Ctrl-C, SIGTERM) kills
# them, so that the threads, and vca with them, stop at once rather than when the remote commands end.
_children: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()
_children_lock = threading.Lock()
_interrupted = threading.Event()
_POLL = 0.25  # seconds between looks at the clock and at interrupts while a command runs


def spawn(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` for work under parallel(): killed when that work is interrupted."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(list(argv), **kwargs)
    with _children_lock:
        _children.add(proc)
    if _interrupted.is_set():  # started while parallel() was killing the others
        proc.kill()
    return proc


def parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``fn`` over ``items`` on up to MAX_PARALLEL threads; results in order. Interrupted, it cancels
    what has not started and kills what spawn() started, then lets the interrupt go on."""
    # Cleared here, not when an interrupted run ends: an interrupt that lands while the pool starts a
    # thread leaves that thread unknown to the pool (not joined), and it must see the interrupt too.
    _interrupted.clear()
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(items)))) as pool:
        try:
            return list(pool.map(fn, items))
        except KeyboardInterrupt:
            _interrupted.set()
            pool.shutdown(wait=False, cancel_futures=True)
            with _children_lock:
                victims = list(_children)
            for proc in victims:
                with contextlib.suppress(OSError):
                    proc.kill()  # a no-op for a process already reaped
            raise


@dataclass
class ExecResult:
    node: Node
    rc: int  # 255: ssh itself failed (unreachable) unless ``reached``; -1: timed out
    stdout: str
    stderr: str
    seconds: float
    reached: bool = True  # the remote shell started the command: an rc of 255 is the command's own


# The remote shell writes this line to stderr before the command: ssh exits 255 both when it fails
# itself and when the command exits 255, and only the marker tells the two apart.
STARTED = "vca:started:7f3c"
_STARTED_PREFIX = f"printf '%s\\n' {STARTED} >&2; "


def ssh_command(state: ClusterState, node: Node, *extra: str, batch: bool = True) -> list[str]:
    cmd = ["ssh", "-F", str(state.ssh_config_path)]
    if batch:
        cmd += ["-o", "BatchMode=yes"]
    return [*cmd, *extra, node.name]


def run_one(state: ClusterState, node: Node, command: str, timeout: float | None = None,
            stdin: bytes | None = None) -> ExecResult:
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    with spawn([*ssh_command(state, node, "-T"), "--", _STARTED_PREFIX + command], stdin=subprocess.PIPE,
               stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        data: bytes | None = stdin or b""
        while True:
            step = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
            try:
                out, err = proc.communicate(data, timeout=step)
                rc = proc.returncode
                break
            except subprocess.TimeoutExpired as exc:
                data = None  # sent already
                out, err = exc.stdout or b"", exc.stderr or b""
                if _interrupted.is_set():
                    why = "interrupted"
                elif deadline is not None and time.monotonic() >= deadline:
                    why = f"timed out after {timeout} s"
                else:
                    continue
                # Abandon it now: through a control master, the session's pipes stay open until the
                # remote command ends, whatever becomes of this ssh process.
                proc.kill()
                rc, err = -1, err + why.encode()
                break
    text, reached = _strip_marker(err.decode(errors="replace"))
    return ExecResult(node, rc, out.decode(errors="replace"), text, time.monotonic() - started, reached)


def _strip_marker(err: str) -> tuple[str, bool]:
    """stderr without the STARTED line, and whether that line came (ssh's own messages may precede it)."""
    head, sep, tail = err.partition(STARTED + "\n")
    return head + tail, bool(sep)


def run_all(state: ClusterState, nodes: Sequence[Node], command: str, timeout: float | None = None,
            on_done: Callable[[ExecResult], None] | None = None) -> list[ExecResult]:
    """Run ``command`` on every node at once; results in node order."""
    if not nodes:
        return []

    def one(n: Node) -> ExecResult:
        r = run_one(state, n, command, timeout)
        if on_done:
            on_done(r)
        return r

    return parallel(one, nodes)


def wait_ready(state: ClusterState, nodes: Sequence[Node], timeout: float = 90.0) -> None:
    """Wait until every node accepts an SSH login (port open, host key as recorded, key accepted)."""
    deadline = time.monotonic() + timeout

    def ready(n: Node) -> bool:
        while time.monotonic() < deadline and not _interrupted.is_set():
            if _port_open(n.address, n.port):
                left = max(1.0, deadline - time.monotonic())
                r = run_one(state, n, "true", timeout=min(15.0, left))
                if r.rc == 0:
                    return True
            _interrupted.wait(0.2)
        return False

    ok = parallel(ready, nodes)
    late = [n.name for n, good in zip(nodes, ok, strict=True) if not good]
    if late:
        raise ProviderError(
            f"nodes not reachable over SSH after {timeout:.0f} s: {', '.join(late)}",
            "check `vca status` (lab nodes: their console.log in the lab folder); `vca teardown` removes them",
        )


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
