"""Host networking for lab nodes: one private bridge, and per node a network namespace joined to it
by a veth pair. Nothing is routed off the machine (the lab never enables ip_forward)."""

from __future__ import annotations

import ipaddress
import subprocess
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


CLAIMS = Path("/run/vca-lab")


def claim_bridge(bridge: str, owner: Path) -> None:
    """One lab folder per bridge, machine-wide: two labs on one bridge would hand out the same
    addresses and delete each other's bridge."""
    CLAIMS.mkdir(parents=True, exist_ok=True)
    claim = CLAIMS / f"{bridge}.owner"
    holder = claim.read_text().strip() if claim.exists() else ""
    if holder and holder != str(owner) and link_exists(bridge) and Path(holder, "registry.json").exists():
        raise LabError(
            f"the lab bridge {bridge} belongs to the lab in {holder}",
            "use that lab (VCA_LAB_DIR), or give this one its own VCA_LAB_BRIDGE and VCA_LAB_SUBNET",
        )
    claim.write_text(str(owner))


def release_bridge(bridge: str, owner: Path) -> None:
    claim = CLAIMS / f"{bridge}.owner"
    if claim.exists() and claim.read_text().strip() == str(owner):
        claim.unlink()


def _subnet_users(network: ipaddress.IPv4Network, bridge: str) -> list[str]:
    res = ip("-4", "-o", "addr", "show", check=False)
    users = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] != bridge:
            iface = ipaddress.IPv4Interface(parts[3])
            if iface.network.overlaps(network):
                users.append(f"{parts[1]} ({parts[3]})")
    return users


def ensure_bridge(bridge: str, gateway: str, prefixlen: int) -> bool:
    """Create the bridge with the host-side address if missing. Returns True when it was created."""
    if link_exists(bridge):
        return False
    network = ipaddress.IPv4Interface(f"{gateway}/{prefixlen}").network
    clash = _subnet_users(network, bridge)
    if clash:
        raise LabError(f"the lab network {network} overlaps {', '.join(clash)} on this host",
                       "set VCA_LAB_SUBNET to a free network")
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


def delete(netns: str, veth: str) -> None:
    """Remove the veth pair, then the namespace. Deleting the veth ourselves is synchronous; leaving it
    to the kernel's namespace cleanup takes seconds under load."""
    if link_exists(veth):
        ip("link", "del", veth, check=False)
    if netns_exists(netns):
        ip("netns", "del", netns, check=False)
