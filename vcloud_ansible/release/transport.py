"""``vca inject`` without Ansible on the hot path: one ssh session per node, all nodes at once.

In one session the node receives the install script (vcloud_ansible.release.install), says whether it holds
the release already, receives the package only if it does not, and answers with its report. That is
one connection and one round trip per node, where an Ansible play costs a controller process per
task and host; on 2 cores shared with 16 lab nodes the play alone took 4-6 s. playbooks/inject.yml
does the same through Ansible (``vca run inject``, raw ansible-playbook).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RemoteFailed
from ..node import Node
from ..playbook.progress import natural_key
from ..remote.ssh import OWN_CONNECTION, parallel, spawn, ssh_command
from ..state import ClusterState
from . import install as release
from .contract import Contract, cluster_vars, contract_env, contract_of

# The node reads the script, then says whether it needs the package; the controller then sends
# "<bytes>\n" and that many bytes (0 when the node has the release or downloads it itself).
_HANDSHAKE = """P={path}
mkdir -p "$HOME/vca/incoming" "$HOME/vca/bin"
if [ -d "$HOME/vca/releases/{rid}" ]; then echo have=1; else echo have=0; fi
IFS= read -r n || n=0
if [ "$n" -gt 0 ]; then
  if ! {{ head -c "$n" > "$P.part" && [ "$(wc -c < "$P.part")" -eq "$n" ] && mv "$P.part" "$P"; }}; then
    rm -f "$P.part"; free=$(df -Pk "$HOME/vca/incoming" 2>/dev/null | awk 'NR == 2 {{ print $4 }}')
    if [ -n "$free" ] && [ $((free * 1024)) -lt "$n" ]; then
      echo "error=the node's disk is full: the package needs $(((n + 1023) / 1024)) KiB," \
        "$HOME/vca/incoming has $free KiB free"
    else echo "error=the package arrived incomplete ($free KiB free in $HOME/vca/incoming)"
    fi
    exit 1
  fi
fi
"""
TAG = ".$$"  # the package's name on the node is unique per session (two injects at once)


@dataclass
class NodeInject:
    """How the release went on one node."""

    node: str
    report: release.Report | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.report is not None and self.report.ok and not self.error

    @property
    def message(self) -> str:
        if self.error:
            return self.error
        return self.report.error_message() if self.report else "no answer"


@dataclass
class InjectResult:
    release_id: str
    nodes: dict[str, NodeInject] = field(default_factory=dict)
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)  # about the package (an old mkpkg tarball repacked)

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.nodes.values())

    @property
    def failed(self) -> list[str]:
        return sorted((h for h, n in self.nodes.items() if not n.ok), key=natural_key)

    @property
    def changed_total(self) -> int:
        return sum(1 for n in self.nodes.values() if n.report and n.report.changed)

    def reports(self) -> dict[str, dict[str, Any]]:
        """Each answering node's ``vca_report`` (what the Ansible action hands back too)."""
        return {h: n.report.vca_report() for h, n in self.nodes.items() if n.ok and n.report}

    def raise_for_failures(self, what: str = "inject") -> None:
        if self.failed:
            raise RemoteFailed.naming(what, {h: self.nodes[h].message for h in self.failed}, len(self.nodes),
                                      "fix the cause and run the same command again: nodes that have the "
                                      "release receive nothing")


def inject_nodes(state: ClusterState, every: Sequence[Node], targets: Sequence[Node], tarball: Path,
                 release_id: str, compression: str, job: release.JobOptions, *,
                 url: str = "", timeout: float | None = None,
                 on_done: Callable[[NodeInject], None] | None = None) -> InjectResult:
    """Install and start the release on ``targets`` (``every``: the whole cluster, for the contract)."""
    from .cpus import load_cpus

    contract = contract_of(every, load_cpus(state))  # the hostfile as the membership push writes it
    result = InjectResult(release_id)
    started = time.monotonic()

    def one(n: Node) -> NodeInject:
        try:
            out = _one_node(state, n, contract, tarball, release_id, compression, job, url, timeout)
        except Exception as exc:  # one node's surprise must not hide the others' outcomes
            out = NodeInject(n.name, error=f"{type(exc).__name__}: {exc}")
        if on_done:
            on_done(out)
        return out

    for out in parallel(one, targets):
        result.nodes[out.node] = out
    result.elapsed = time.monotonic() - started
    return result


def _one_node(state: ClusterState, node: Node, contract: Contract, tarball: Path, rid: str,
              compression: str, job: release.JobOptions, url: str,
              timeout: float | None) -> NodeInject:
    # The node's contract variables from where Ansible reads them too (group_vars, host_vars beside the
    # cluster's inventory): both inject paths give a job the same environment.
    job_env = contract_env(contract.nodes, node.name, rid, state.name, cluster_vars(state.dir, node.name)) | job.env
    script = session_script(rid, compression, contract, job_env, job, url, job.fingerprint())
    argv = [*ssh_command(state, node, *OWN_CONNECTION), "--", release.run_script_command(len(script))]
    with tempfile.TemporaryFile() as err:
        proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        try:
            sent, stdout = converse(proc, script, tarball, bool(url))
            rc = proc.wait()
        finally:
            if timer:
                timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if rc == 255 and "have=" not in stdout:
        why = stderr.strip().splitlines()[-1] if stderr.strip() else "ssh failed"
        return NodeInject(node.name, error=f"unreachable: {why}")
    if rc < 0:
        return NodeInject(node.name, error=f"timed out after {timeout:.0f} s")
    return NodeInject(node.name, release.Report.parse(rid, sent, rc, stdout, stderr))


def session_script(rid: str, compression: str, contract: Contract, env: dict[str, str],
                   job: release.JobOptions, url: str = "", settings: str = "") -> bytes:
    """What the node runs in its session: the handshake, then the shared install script."""
    handshake = _HANDSHAKE.format(path=release.package_path('"$HOME"', rid, TAG), rid=rid)
    return (handshake + release.install_script(rid, compression, contract, env, job, url=url, bootstrap=True,
                                               tag=TAG, settings=settings)).encode()


def converse(proc: subprocess.Popen[bytes], script: bytes, tarball: Path, by_url: bool) -> tuple[bool, str]:
    """Send the script, read whether the node needs the package, send it (or not), read the report."""
    assert proc.stdin is not None and proc.stdout is not None
    sent = False
    first = b""
    try:
        proc.stdin.write(script)
        proc.stdin.flush()
        first = proc.stdout.readline()
        if first.strip() == b"have=0" and not by_url:
            size = tarball.stat().st_size
            proc.stdin.write(f"{size}\n".encode())
            proc.stdin.flush()
            _send_file(proc.stdin.fileno(), tarball, size)
            sent = True
        else:
            proc.stdin.write(b"0\n")
    except BrokenPipeError:
        pass  # the node stopped reading (it failed, or ssh did): its answer and exit code say why
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    return sent, (first + proc.stdout.read()).decode(errors="replace")


def _send_file(fd: int, path: Path, size: int) -> None:
    """The package into ssh's stdin pipe, by the kernel (no copy through Python)."""
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            n = os.sendfile(fd, f.fileno(), offset, size - offset)
            if n == 0:
                raise OSError(f"{path} shrank while it was sent")
            offset += n
