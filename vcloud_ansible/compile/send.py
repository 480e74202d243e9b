"""The sources to the dev node: rsync over the cluster's ssh_config (rsync is on the host, in the lab
image and in role toolchain's package list).

rsync's quick check (size + mtime, kept with -a) sends only the files that changed since the last
compile on a kept node, and keeps their times, so make and scons rebuild only what depends on them.
Build products on the node are left alone: rsync runs without --delete, and files deleted here are
removed there from the list of files the last compile sent (plan.build_script).
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EnvironmentProblem, RemoteFailed, UsageError
from ..node import Node
from ..remote.ssh import ssh_command
from ..state import ClusterState


@dataclass
class Sent:
    files: list[str] = field(default_factory=list)  # sent this time (new or changed), relative to SRC
    total: int = 0  # source files SRC holds (after the filters)
    bytes: int = 0  # of the files sent


def _filters(rules: list[str]) -> list[str]:
    return [f"--filter={r}" for r in rules]


def source_files(src: Path, rules: list[str]) -> list[str]:
    """Every file rsync would consider, relative to SRC (what the node keeps as its source list)."""
    res = subprocess.run(["rsync", "-r", "--list-only", "--out-format=%n", *_filters(rules), f"{src}/"],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise EnvironmentProblem(f"cannot list {src}: {res.stderr.strip()[-300:]}")
    files = []
    for line in res.stdout.splitlines():
        if not line.startswith("-"):
            continue  # folders, links and devices: rsync -a carries links; the list names files
        name = line.split(None, 4)[4]
        files.append(name)
    return files


def send(state: ClusterState, node: Node, src: Path, folder: str, rules: list[str],
         timeout: float = 1800) -> Sent:
    """rsync SRC/ into ``folder`` on ``node``; returns what travelled."""
    names = source_files(src, rules)
    if any("\n" in n for n in names):
        bad = next(n for n in names if "\n" in n)
        raise UsageError(f"refused source file name with a line break: {bad!r}", "rename it")
    ssh = shlex.join(ssh_command(state, node)[:-1])
    argv = ["rsync", "-a", "--out-format=%i %l %n", "-e", ssh, *_filters(rules), f"{src}/",
            f"{node.name}:{folder}/"]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RemoteFailed(f"sending the sources to {node.name} timed out after {timeout:.0f} s",
                           [node.name]) from None
    if res.returncode != 0:
        why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        raise RemoteFailed(f"sending the sources to {node.name} failed: {why}", [node.name],
                           "is rsync on the node? role toolchain installs it")
    out = Sent(total=len(names))
    for line in res.stdout.splitlines():
        flags, _, rest = line.partition(" ")
        if flags.startswith(("<f", ">f")):
            size, _, name = rest.partition(" ")
            out.files.append(name)
            out.bytes += int(size) if size.isdigit() else 0
    return out
