"""Job nodes on EC2: one instance per row, of that row's instance type, through the ec2 provider.

- Each instance is launched with InstanceInitiatedShutdownBehavior ``terminate`` (setting
  ``shutdown_behavior``): the runner's own ``poweroff`` after a verified upload ends the instance.
- Its ``vca:expires-at`` tag is the row's timeout plus EXPIRY_MARGIN_S (boot, setup, upload), or the
  array's lifetime for rows without a timeout: a node whose upload gave up is expired for the guard,
  and powers itself off (so terminates) ``hold_seconds`` after giving up in any case.
- The security group is the provider's own (SSH from the control machine's address or the ranges
  given, everything from the group's members); a range open to the world is refused for job nodes.
- What a job's state needs from EC2 is the array's instances in a live state: one that is gone
  (terminated, or never listed) without a result is lost. From a machine that did not start the array
  the region and owner come from the array's record in the bucket.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

from ..errors import UsageError
from ..node import Node
from ..state import ClusterState

EXPIRY_MARGIN_S = 3600 + 900  # past a row's timeout: boot and setup (an hour), then the upload window
NOT_FOR_JOBS = ("role", "spot", "max_price", "head_instance_type", "worker_instance_type", "dev_instance_type",
                "head_image", "dev_image")  # the array decides these per row, or they do not apply


def job_settings(given: dict[str, Any]) -> dict[str, Any]:
    """The ec2 settings of a job array from the ones given (flags, VCA_EC2_*): shutdown terminates,
    nothing open to the world. Refuses what does not apply to job nodes."""
    bad = [k for k in given if k in NOT_FOR_JOBS]
    if bad:
        raise UsageError(f"--{bad[0].replace('_', '-')} does not apply to job nodes",
                         "each row names its instance type; every job node is a worker")
    if given.get("shutdown_behavior") not in (None, "terminate"):
        raise UsageError("job nodes terminate when they power off", "leave out --shutdown-behavior")
    for cidr in given.get("ssh_cidrs") or ():
        try:
            net = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            continue  # the provider's own check names it
        if net.prefixlen == 0:
            raise UsageError(f"--ssh-cidr {cidr} opens job nodes to the whole internet",
                             "give this machine's address (the default) or your network's range")
    return {**given, "shutdown_behavior": "terminate"}


def check_group(ec2: Any, group_id: str) -> None:
    """A security group given for job nodes (--security-group) may let nothing in from the whole internet."""
    groups = ec2.describe_security_groups(GroupIds=[group_id]).get("SecurityGroups", [])
    for perm in (p for g in groups for p in g.get("IpPermissions", [])):
        world = [r["CidrIp"] for r in perm.get("IpRanges", []) if r.get("CidrIp") == "0.0.0.0/0"] + \
                [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", []) if r.get("CidrIpv6") == "::/0"]
        if world:
            ports = "all ports" if perm.get("IpProtocol") == "-1" else f"port {perm.get('FromPort')}"
            raise UsageError(f"security group {group_id} is open to {world[0]} ({ports})",
                             "job nodes take no rule open to the whole internet: leave out --security-group "
                             "(vca makes one) or give a closed one")


def lifetime(timeout: int | None, array_lifetime: int) -> str:
    """The ``lifetime`` setting (vca:expires-at) of a row's node: its timeout plus the margin."""
    seconds = timeout + EXPIRY_MARGIN_S if timeout else array_lifetime
    return f"{max(60, int(seconds))}s"


def record(stored: dict[str, Any]) -> dict[str, Any]:
    """What the array's record in the bucket keeps of the ec2 settings: enough to list its instances
    from another machine (no paths, no secrets)."""
    return {k: stored[k] for k in ("region", "owner", "ssh_via", "user") if k in stored}


def nodes_elsewhere(state: ClusterState, ec2_record: dict[str, Any]) -> list[Node]:
    """The array's instances when this machine holds no record of its cluster (status from a fresh
    VCA_HOME): listed by tag in the array's region."""
    from ..providers.ec2 import api as ec2_api
    from ..providers.ec2.provider import Ec2Provider
    from ..providers.ec2.settings import Ec2Settings

    s = Ec2Settings.from_dict(ec2_record)
    return Ec2Provider._nodes(state, s, ec2_api.cluster_instances(ec2_api.client(s.region), state.name, s.region))


def created_at(n: Node) -> float | None:
    """When a node was made: the lab records it; an instance has its launch time (UTC, ISO 8601)."""
    created = n.details.get("created")
    if isinstance(created, (int, float)):
        return float(created)
    try:
        return datetime.strptime(str(n.details.get("launched") or ""), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC).timestamp()
    except ValueError:
        return None


def node_key(n: Node) -> str:
    """How a launch names its node: the instance id on EC2 (indexes are reused, ids never), else the name."""
    return n.instance_id or n.name
