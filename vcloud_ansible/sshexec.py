"""Commands on nodes over plain SSH (through the cluster's ssh_config), in parallel and bounded.

Used for `vca exec`, `vca connect`, status probes and the wait for SSH after provisioning: one ssh
round trip costs milliseconds, an Ansible module run costs a Python start on the node.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import ProviderError
from .providers.base import Node
from .state import ClusterState

MAX_PARALLEL = 32  # each ssh holds a few descriptors; stay far below the open-files limit
# For bulk transfers (inject, collect): a connection of its own per node, never through a control
# master. A master would relay every byte through one more process, and a node that died under an old
# master (from provisioning, or an earlier command) keeps the session hanging until ServerAlive gives
# up, a minute later; a fresh connection fails within ConnectTimeout.
OWN_CONNECTION = ("-T", "-o", "ControlMaster=no", "-o", "ControlPath=none")


@dataclass
class ExecResult:
    node: Node
    rc: int  # 255: ssh itself failed (unreachable); -1: timed out
    stdout: str
    stderr: str
    seconds: float


def ssh_command(state: ClusterState, node: Node, *extra: str, batch: bool = True) -> list[str]:
    cmd = ["ssh", "-F", str(state.ssh_config_path)]
    if batch:
        cmd += ["-o", "BatchMode=yes"]
    return [*cmd, *extra, node.name]


def run_one(state: ClusterState, node: Node, command: str, timeout: float | None = None,
            stdin: bytes | None = None) -> ExecResult:
    started = time.monotonic()
    try:
        res = subprocess.run(
            [*ssh_command(state, node, "-T"), "--", command], input=stdin or b"",
            capture_output=True, timeout=timeout, check=False,
        )
        rc, out, err = res.returncode, res.stdout, res.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = -1, exc.stdout or b"", (exc.stderr or b"") + f"timed out after {timeout} s".encode()
    return ExecResult(node, rc, out.decode(errors="replace"), err.decode(errors="replace"),
                      time.monotonic() - started)


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

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(nodes))) as pool:
        return list(pool.map(one, nodes))


def wait_ready(state: ClusterState, nodes: Sequence[Node], timeout: float = 90.0) -> None:
    """Wait until every node accepts an SSH login (port open, host key as recorded, key accepted)."""
    deadline = time.monotonic() + timeout
    stop = threading.Event()  # set when the wait ends early (interrupted): the probes give up

    def ready(n: Node) -> bool:
        while time.monotonic() < deadline and not stop.is_set():
            if _port_open(n.address, n.port):
                left = max(1.0, deadline - time.monotonic())
                r = run_one(state, n, "true", timeout=min(15.0, left))
                if r.rc == 0:
                    return True
            stop.wait(0.2)
        return False

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(nodes)))) as pool:
        try:
            ok = list(pool.map(ready, nodes))
        finally:  # before the pool waits for its threads
            stop.set()
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
