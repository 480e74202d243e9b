"""The user's init script: run once per node, as root, after the storage roles and before the first
inject (the ``init_script`` role, last of the setup stage on every node).

The file given to ``vca provision --init-script FILE`` is checked, then copied next to the cluster's
inventory (``init-script``, mode 0600), where the role finds it (``{{ inventory_dir }}/init-script``):
nodes added later run the same script even when the user's file has changed or gone. On the node,
``/var/lib/vca/init/`` keeps the script, its ``output``, its ``status`` (``init_exit``, ``init_time``,
``init_seconds``) and a ``done`` marker that stops it from running again.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..state import ClusterState

ROLE = "init_script"
STORED_NAME = "init-script"
NODE_DIR = "/var/lib/vca/init"
STATUS_COMMAND = f"cat {NODE_DIR}/status 2>/dev/null || true"
"""Appended to the status probe: prints nothing on a node that never ran an init script."""
LOGS_COMMAND = (f"cat {NODE_DIR}/output 2>/dev/null || "
                "{ echo 'vca: no init script has run on this node' >&2; exit 1; }")
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class InitState:
    exit: int
    at: float  # when it ended (epoch seconds)
    seconds: float  # how long it ran


def check(path: str | Path) -> Path:
    """The script file, refused in one line when it is missing, not a file, unreadable or too big."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"init script not found: {p}")
    if not p.is_file():
        raise UsageError(f"init script is not a file: {p}")
    if not os.access(p, os.R_OK):
        raise UsageError(f"init script is not readable: {p}")
    size = p.stat().st_size
    if size == 0:
        raise UsageError(f"init script is empty: {p}")
    if size > MAX_BYTES:
        raise UsageError(f"init script is over 1 MiB: {p}", "keep large files elsewhere (S3) and fetch them from it")
    return p.resolve()


def stored_path(state: ClusterState) -> Path:
    return state.dir / STORED_NAME


@contextmanager
def staged(state: ClusterState, path: Path | None) -> Iterator[dict[str, list[str]]]:
    """Keep ``path`` (checked) with the cluster for the provision under way; yields the setup roles to
    name (``{"all": ["init_script"]}``, or nothing without a script). A provision that fails before
    the cluster exists leaves no trace of it."""
    if path is None:
        yield {}
        return
    script = check(path)
    existed = state.exists()
    target = stored_path(state)
    made_dir = not state.dir.exists()
    state.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_name(target.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(script.read_bytes())
    os.replace(tmp, target)
    try:
        yield {"all": [ROLE]}
    except BaseException:
        if not existed and not state.exists():
            target.unlink(missing_ok=True)
            if made_dir:
                shutil.rmtree(state.dir, ignore_errors=True)
        raise


def parse(text: str) -> InitState | None:
    """The node's init state from the status probe's output (``init_exit=`` lines), if it ran."""
    kv = dict(line.split("=", 1) for line in text.splitlines() if line.startswith("init_") and "=" in line)
    try:
        return InitState(int(kv["init_exit"]), float(kv["init_time"]), float(kv.get("init_seconds", "0")))
    except (KeyError, ValueError):
        return None


def details(state: InitState | None) -> dict[str, Any]:
    """The ``vca status --json`` fields (``init_exit``/``init_time`` null where it never ran)."""
    return {"init_exit": state.exit if state else None, "init_time": state.at if state else None}


def failed(states: Mapping[str, InitState | None]) -> list[str]:
    """The node names whose init script failed."""
    return [name for name, s in states.items() if s is not None and s.exit != 0]


def boot_script(state: ClusterState, timeout: int = 3600) -> str:
    """The cluster's init script wrapped for EC2 user-data (cloud-init runs it at first boot, without
    the control machine), recording the same node state as the role; "" when the cluster has none.

    The role then finds the ``done`` marker and leaves a node where it succeeded alone; where it
    failed, the setup stage runs it again and names the node."""
    try:
        data = stored_path(state).read_bytes()
    except FileNotFoundError:
        return ""
    body = base64.encodebytes(data).decode()
    return f"""#!/bin/sh
# vca: the cluster's init script, run once at first boot; its state is what `vca status` reads
set -u
d={NODE_DIR}
[ -e "$d/done" ] && exit 0
mkdir -p "$d" && chmod 700 "$d" && cd "$d" || exit 1
base64 -d > script <<'VCA_INIT_EOF'
{body}VCA_INIT_EOF
chmod 700 script
run=./script; [ "$(head -c 2 script)" = '#!' ] || run="/bin/sh ./script"
start=$(date +%s); timeout {int(timeout)} $run < /dev/null > output 2>&1; rc=$?; end=$(date +%s)
printf 'init_exit=%s\\ninit_time=%s\\ninit_seconds=%s\\n' "$rc" "$end" "$((end - start))" > status.tmp
mv status.tmp status
if [ "$rc" = 0 ]; then touch done; fi
exit "$rc"
"""
