"""Text the CLI makes of results that several commands show (exec, stop)."""

from __future__ import annotations

from ..errors import RemoteFailed
from ..remote.ssh import ExecResult


def summarize(results: list[ExecResult]) -> str:
    """'N nodes: N ok'; raises RemoteFailed naming each node that failed and why."""
    failed = [r for r in results if r.rc != 0]
    summary = f"{len(results)} node{'s' if len(results) != 1 else ''}: {len(results) - len(failed)} ok"
    if failed:
        detail = ", ".join(f"{r.node.name} ({_why(r)})" for r in failed)
        raise RemoteFailed(f"{summary}, {len(failed)} failed: {detail}", [r.node.name for r in failed])
    return summary


def _why(r: ExecResult) -> str:
    if r.rc == 255 and not r.reached:  # ssh's own failure, not the command's exit 255
        return "unreachable: " + (r.stderr.strip().splitlines() or ["ssh failed"])[-1]
    if r.rc == -1:
        return "timed out"
    return f"exit {r.rc}"
