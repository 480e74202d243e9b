"""Host networking for lab nodes: one private bridge, and per node a network namespace joined to it
by a veth pair. Nothing is routed off the machine (the lab never enables ip_forward)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from ..errors import LabError


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed: {res.stderr.strip()}")
    return res


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def ensure_bridge(bridge: str, gateway: str, prefixlen: int) -> bool:
    """Create the bridge with the host-side address if missing. Returns True when it was created."""
    if link_exists(bridge):
        return False
    ip("link", "add", bridge, "type", "bridge")
    ip("addr", "add", f"{gateway}/{prefixlen}", "dev", bridge)
    ip("link", "set", bridge, "up")
    return True


def remove_bridge(bridge: str) -> None:
    if link_exists(bridge):
        ip("link", "del", bridge, check=False)


def create(netns: str, veth: str, bridge: str, address: str, prefixlen: int, gateway: str) -> None:
    """A namespace whose eth0 has ``address`` on the bridge and a default route via the host side."""
    peer = veth + "p"
    ip("netns", "add", netns)
    try:
        ip("link", "add", veth, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", netns)
        ip("link", "set", veth, "master", bridge, "up")
        batch = (
            f"link set {peer} name eth0\n"
            f"addr add {address}/{prefixlen} dev eth0\n"
            "link set lo up\n"
            "link set eth0 up\n"
            f"route add default via {gateway}\n"
        )
        res = subprocess.run(
            ["ip", "-n", netns, "-batch", "-"], input=batch, capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            raise LabError(f"configuring network namespace {netns} failed: {res.stderr.strip()}")
    except BaseException:
        delete(netns, veth)
        raise


def pids(netns: str) -> list[int]:
    if not netns_exists(netns):
        return []
    res = ip("netns", "pids", netns, check=False)
    return [int(p) for p in res.stdout.split() if p.isdigit()]


def delete(netns: str, veth: str, timeout: float = 5.0) -> None:
    """Remove the namespace and wait (bounded) for the kernel to drop the host end of the veth."""
    if netns_exists(netns):
        ip("netns", "del", netns, check=False)
    deadline = time.monotonic() + timeout
    while link_exists(veth) and time.monotonic() < deadline:
        time.sleep(0.05)
    if link_exists(veth):
        ip("link", "del", veth, check=False)
