"""Helpers for tests: run the real CLI, look at what the lab left on the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

VCA_ARGV = [sys.executable, "-m", "vcloud_ansible.cli.main"]  # the real CLI, from this interpreter


def vca(*args: str, check: bool = True, input: str | None = None,
        env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real `vca` command line in a subprocess."""
    res = subprocess.run(
        [*VCA_ARGV, *args], capture_output=True, text=True,
        input=input, env={**os.environ, **(env or {})}, timeout=timeout, check=False,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"vca {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


REPO = Path(__file__).resolve().parent.parent


def raw_ansible(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run an Ansible command (ansible-playbook, ansible-inventory...) as a user would from the
    repository root: this venv's tools first on PATH, the bundle's collections pinned, a broken
    inventory an error."""
    from vcloud_ansible import paths

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ANSIBLE_COLLECTIONS_PATH": paths.collections_path(), "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"}
    return subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)


def host_leftovers(cluster: str) -> list[str]:
    """Everything of ``cluster`` still on the host: namespaces, mounts, loop devices, processes."""
    left: list[str] = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left += [f"netns {line.split()[0]}" for line in netns.splitlines() if f"vca-{cluster}-" in line]
    mounts = Path("/proc/mounts").read_text()
    left += [f"mount {line.split()[1]}" for line in mounts.splitlines() if f"/nodes/{cluster}-" in line]
    loops = subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True).stdout
    for dev in (json.loads(loops).get("loopdevices", []) if loops.strip() else []):
        if f"/nodes/{cluster}-" in str(dev.get("back-file")):
            left.append(f"loop {dev['name']}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"--machine={cluster}-" in cmdline or f"/nodes/{cluster}-" in cmdline:
            left.append(f"process {pid} {cmdline[:80]}")
    return left


def veth_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def wait_until(what: str, check: Callable[[], object], timeout: float, interval: float = 0.2) -> float:
    """Seconds until ``check()`` held (checked every ``interval``); fails naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")
