"""One compile, start to end: the dev node, the sources, the build, the artifacts, the package.

The dev node is the cluster's node with role dev (the lowest index when there are several). When there
is none, one is made with ``Cluster.provision(1, role="dev", setup={"dev": ["toolchain"]})`` (the
cluster too, when it does not exist yet); a dev node whose cluster does not name the toolchain role
gets it named and applied first. Without ``keep`` a node that this compile made is removed at the end,
pass or fail (with the cluster, when the compile made that too); a node that was there is never removed.

The build log streams to ``log`` line by line as the node writes it. A failed build raises
``BuildFailed``, whose exit code is the build's own, naming the compiler's error line.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import RemoteFailed, VcaError
from ..node import Node
from ..remote.ssh import spawn, ssh_command
from ..state import ClusterState
from . import artifacts as arts
from . import plan, send

if TYPE_CHECKING:
    from rich.console import Console

    from ..providers.base import Provider
    from ..setup.stage import SetupRun


class Cluster(Protocol):
    """What a compile needs of vcloud_ansible.Cluster (which calls it: a Protocol, not an import, so
    that the two modules do not import each other)."""

    name: str
    state: ClusterState

    @property
    def provider(self) -> Provider: ...

    def exists(self) -> bool: ...

    def nodes(self) -> list[Node]: ...

    def refresh_access(self, nodes: list[Node] | None = None) -> list[Node]: ...

    def setup_roles(self) -> dict[str, list[str]]: ...

    def setup(self, indexes: Sequence[int] | None = None, *, add: str | None = None, on: str = "all",
              console: Console | None = None, verbose: int = 0) -> SetupRun: ...

    def provision(self, count: int | None = 1, provider: str | None = None, say: Callable[[str], None] = ..., *,
                  total: int | None = None, settings: dict[str, Any] | None = None, role: str | None = None,
                  setup: Mapping[str, Sequence[str]] | None = None, console: Console | None = None
                  ) -> list[Node]: ...

    def teardown(self, say: Callable[[str], None] = ...) -> object: ...

TOOLCHAIN = "toolchain"


class BuildFailed(VcaError):
    """The build exited non-zero; vca exits with the same code."""

    def __init__(self, message: str, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.exit_code = max(1, min(exit_code, 255))


@dataclass
class CompileResult:
    node: str
    made_node: bool
    removed_node: bool
    command: str
    how: str  # --build, vcloud-launch, SConstruct, Makefile, CMakeLists.txt
    folder: str  # the build folder on the node
    files_sent: list[str] = field(default_factory=list)
    sources: int = 0
    bytes_sent: int = 0
    compiler_invocations: int = 0
    exit_code: int = 0
    artifacts: list[arts.Artifact] = field(default_factory=list)
    out: Path | None = None
    manifest: Path | None = None
    package: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # node, send, build, fetch, package, total

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node, "made_node": self.made_node, "removed_node": self.removed_node,
            "build": self.command, "how": self.how, "folder": self.folder, "files_sent": self.files_sent,
            "sources": self.sources, "bytes_sent": self.bytes_sent,
            "compiler_invocations": self.compiler_invocations, "exit_code": self.exit_code,
            "artifacts": [{"path": a.rel, "size": a.size, "sha256": a.sha256} for a in self.artifacts],
            "out": str(self.out) if self.out else None, "manifest": str(self.manifest) if self.manifest else None,
            "package": str(self.package) if self.package else None, "seconds": self.seconds,
        }


def _quiet(_msg: str) -> None:
    pass


def compile_sources(cluster: Cluster, req: plan.CompileRequest, say: Callable[[str], None] = _quiet,
                    log: Callable[[str], None] = _quiet, console: Console | None = None) -> CompileResult:
    """Build ``req.src`` on the cluster's dev node and bring the artifacts back (see the module doc)."""
    req.check()
    command, how = plan.build_command(req)
    t0 = time.monotonic()
    node, made, made_cluster = dev_node(cluster, say, console)
    result = CompileResult(node.name, made, False, command, how, "")
    result.seconds["node"] = round(time.monotonic() - t0, 3)
    try:
        _compile_on(cluster, node, req, result, say, log)
    finally:
        if made and not req.keep:
            say(f"removing {'cluster ' + cluster.name if made_cluster else 'dev node ' + node.name} "
                "(made for this compile; --keep keeps it)")
            remove_dev_node(cluster, node, made_cluster, say)
            result.removed_node = True
        result.seconds["total"] = round(time.monotonic() - t0, 3)
    return result


def _compile_on(cluster: Cluster, node: Node, req: plan.CompileRequest, result: CompileResult,
                say: Callable[[str], None], log: Callable[[str], None]) -> None:
    state = cluster.state
    t = time.monotonic()
    probe = _probe(cluster, node, req.key)
    result.folder = probe["dir"]
    rules = req.excluded()
    sent = send.send(state, node, req.src, result.folder, rules)
    result.files_sent, result.sources, result.bytes_sent = sent.files, sent.total, sent.bytes
    result.seconds["send"] = round(time.monotonic() - t, 3)
    say(f"sent {len(sent.files)} of {sent.total} source file{'s' if sent.total != 1 else ''} to {node.name} "
        f"({sent.bytes} bytes); building with `{result.command}` ({result.how}) in {result.folder}")
    t = time.monotonic()
    names = send.source_files(req.src, rules)
    rc, lines = _build(cluster, node, result.folder, probe["ccache"], result.command, names, log, req.timeout)
    result.seconds["build"] = round(time.monotonic() - t, 3)
    result.exit_code = rc
    result.compiler_invocations = sum(1 for line in lines if plan.is_compile_line(line))
    if rc != 0:
        first = plan.error_line(lines)
        shown = f": {first}" if first else (f": {lines[-1].strip()}" if lines else "")
        raise BuildFailed(f"the build failed on {node.name} (exit {rc}){shown}", rc,
                          "nothing was fetched; the full log is above")
    if not req.artifacts:
        return
    t = time.monotonic()
    from ..collect.manifest import utc_now

    temp_out = None
    out = req.out
    if out is None:  # --package only: the artifacts pass through a temporary folder beside it
        assert req.package is not None
        req.package.parent.mkdir(parents=True, exist_ok=True)
        temp_out = Path(tempfile.mkdtemp(prefix=f".{req.package.name}.artifacts-", dir=req.package.parent))
        out = temp_out / "out"
    try:
        result.artifacts = arts.fetch(state, node, result.folder, req.artifacts, out)
        if temp_out is None:
            result.out = out
            result.manifest = arts.write_manifest(out, node, result.command, result.artifacts, utc_now())
        result.seconds["fetch"] = round(time.monotonic() - t, 3)
        if req.package is not None and req.launch is not None:
            t = time.monotonic()
            arts.write_package(req.package, req.launch, out, result.artifacts, req.force)
            result.package = req.package
            result.seconds["package"] = round(time.monotonic() - t, 3)
    finally:
        if temp_out is not None:
            shutil.rmtree(temp_out, ignore_errors=True)


def dev_node(cluster: Cluster, say: Callable[[str], None], console: Console | None = None
             ) -> tuple[Node, bool, bool]:
    """The cluster's dev node: (node, made by this call, cluster made by this call)."""
    existed = cluster.exists()
    if existed:
        devs = [n for n in cluster.nodes() if n.role == "dev" and n.state == "running"]
        if devs:
            node = min(devs, key=lambda n: n.index)
            named = cluster.setup_roles()
            if TOOLCHAIN not in named.get("dev", []) + named.get("all", []):
                say(f"naming setup role {TOOLCHAIN} for dev nodes and applying it on {node.name}")
                cluster.setup([node.index], add=TOOLCHAIN, on="dev", console=console)
            return node, False, False
    say(f"no dev node in cluster '{cluster.name}': making one with the {TOOLCHAIN} role "
        "(the first install takes a few minutes)")
    new = cluster.provision(1, role="dev", setup={"dev": [TOOLCHAIN]}, say=say, console=console)
    return new[0], True, not existed


def remove_dev_node(cluster: Cluster, node: Node, whole_cluster: bool, say: Callable[[str], None]) -> None:
    if whole_cluster:
        cluster.teardown(say)
        return
    with cluster.state.lock("compile", say):
        cluster.provider.destroy(cluster.state, [node.index], say)
        cluster.refresh_access()  # the access files without it


def _probe(cluster: Cluster, node: Node, key: str) -> dict[str, str]:
    from ..remote.ssh import run_one

    r = run_one(cluster.state, node, plan.probe_script(key), timeout=60)
    info = plan.parse_probe(r.stdout)
    if r.rc != 0 or "dir" not in info:
        why = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.rc}"
        raise RemoteFailed(f"cannot prepare the build folder on {node.name}: {why}", [node.name])
    if not info.get("rsync"):
        raise RemoteFailed(f"{node.name} has no rsync", [node.name],
                           f"apply role toolchain: `vca -c {cluster.name} setup --node {node.index}`")
    return info


def _build(cluster: Cluster, node: Node, folder: str, ccache: str, command: str, names: list[str],
           log: Callable[[str], None], timeout: float | None) -> tuple[int, list[str]]:
    """Run the build script; stream its log; (exit code, log lines)."""
    script = plan.build_script(folder, ccache, command)
    argv = [*ssh_command(cluster.state, node, "-T"), "--", f"sh -c {shlex.quote(script)}"]
    deadline = None if timeout is None else time.monotonic() + timeout
    lines: list[str] = []
    rc: int | None = None
    started = nodir = False
    blank = 0  # empty lines held back: the one before the exit mark is the script's own
    with spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write("".join(n + "\n" for n in names).encode())
        proc.stdin.close()
        buf = b""
        while True:
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                raise BuildFailed(f"the build on {node.name} timed out after {timeout:.0f} s", 124)
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *whole, buf = buf.split(b"\n")
            for raw in whole:
                line = raw.decode(errors="replace")
                if line.startswith(plan.EXIT_MARK):
                    rc = int(line[len(plan.EXIT_MARK):] or 1)
                elif line == plan.NODIR_MARK:
                    nodir = True
                elif line == plan.START_MARK:
                    started = True
                elif started:
                    lines.append(line)
                    if line.strip():  # an empty line is shown once something follows it
                        for held in lines[len(lines) - 1 - blank:-1]:
                            log(held)
                        log(line)
                        blank = 0
                    else:
                        blank += 1
        if buf:
            lines.append(buf.decode(errors="replace"))
            log(lines[-1])
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.wait()
    if nodir:
        raise RemoteFailed(f"cannot enter the build folder {folder} on {node.name}", [node.name])
    if rc is None:
        why = err.splitlines()[-1] if err else f"ssh exited {proc.returncode}"
        raise RemoteFailed(f"the build on {node.name} did not finish: {why}", [node.name])
    while lines and not lines[-1].strip():
        lines.pop()
    return rc, lines

