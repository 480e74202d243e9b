"""``vca gc``: what vca left in the cloud, found by its tags and removed on request.

A resource is a candidate only when it carries the ``vca:cluster`` tag (anything without it is never
looked at, let alone touched), and then only when:

- its cluster is not known here ($VCA_HOME has no EC2 cluster of that name in that region): a cluster
  torn down or forgotten with resources left over, or one made elsewhere;
- its cluster is known here, nothing runs a command on it, and no node of it ever answered (a
  ``vca provision`` killed before its nodes came up): everything of it goes, and the local record too;
- it is an instance past its ``vca:expires-at`` (a whole cluster past expiry goes with its group,
  launch template and key pair).

Kinds: instances (not yet terminated), security groups, launch templates, key pairs, open spot
requests. Removal order: spot requests, instances (waited for, bounded), launch templates, key pairs,
security groups (retried while terminating instances still hold them).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError, VcaError
from ..paths import vca_home
from ..state import ClusterState, list_clusters

Say = Callable[[str], None]
KINDS = ("spot-request", "instance", "launch-template", "key-pair", "security-group")
TAG_CLUSTER = "vca:cluster"
WAIT_TERMINATED = 300.0  # seconds to wait for instances to terminate before groups are deleted


@dataclass
class Leftover:
    region: str
    kind: str  # one of KINDS
    id: str
    cluster: str
    reason: str  # why it is a candidate
    state: str = ""  # instances: their state
    name: str = ""  # key pairs and launch templates are deleted by name/id


@dataclass
class GcResult:
    found: list[Leftover] = field(default_factory=list)
    removed: list[Leftover] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # "<kind> <id>" -> why
    forgotten: list[str] = field(default_factory=list)  # local cluster records removed

    def counts(self, which: Sequence[Leftover]) -> dict[str, int]:
        c = Counter(x.kind for x in which)
        return {k: c[k] for k in KINDS if c[k]}


def _known(home: Path) -> dict[str, tuple[str, ClusterState]]:
    """Clusters known here that live on EC2: name -> (region, state)."""
    out: dict[str, tuple[str, ClusterState]] = {}
    for name in list_clusters(home):
        state = ClusterState(name, home)
        try:
            record = state.load()
        except (VcaError, OSError, ValueError, TypeError):
            continue
        if record.provider == "ec2":
            out[name] = (str(record.settings.get("region", "")), state)
    return out


def default_regions(home: Path | None = None) -> list[str]:
    """The regions of the EC2 clusters known here and the AWS chain's region."""
    regions = [r for r, _ in _known(home or vca_home()).values() if r]
    env = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if env:
        regions.append(env)
    return list(dict.fromkeys(regions))


def _busy(state: ClusterState) -> bool:
    """Another vca command holds the cluster (a provision under way must not lose its instances)."""
    try:
        with state.lock("gc", lambda _m: None, wait=0):
            return False
    except VcaError:
        return True


def _never_reached(state: ClusterState) -> bool:
    """No node of the cluster ever answered: no host key was ever learnt."""
    try:
        return not any(line.strip() and not line.startswith("#")
                       for line in state.known_hosts.read_text().splitlines())
    except OSError:
        return True


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", []) or []}


def _expired(tags: dict[str, str], now: float) -> bool:
    from ..providers.ec2.provider import parse_expiry

    at = parse_expiry(tags.get("vca:expires-at"))
    return at is not None and now >= at


def scan(region: str, home: Path | None = None, now: float | None = None) -> list[Leftover]:
    """Every candidate in ``region`` (read-only calls: one per kind, paginated)."""
    from ..providers.ec2 import api

    home = home or vca_home()
    now = time.time() if now is None else now
    ec2 = api.client(region)
    api.check_region(ec2, region)
    known = {name: st for name, (r, st) in _known(home).items() if r == region}
    tagged = [{"Name": "tag-key", "Values": [TAG_CLUSTER]}]
    with api.aws_errors(region):
        instances = [i for p in ec2.get_paginator("describe_instances").paginate(Filters=tagged)
                     for r in p.get("Reservations", []) for i in r.get("Instances", [])
                     if i["State"]["Name"] in api.LIVE_STATES]
        groups = ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]
        templates = [t for p in ec2.get_paginator("describe_launch_templates").paginate(Filters=tagged)
                     for t in p.get("LaunchTemplates", [])]
        keys = ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]
        spots = [s for s in ec2.describe_spot_instance_requests(Filters=tagged)["SpotInstanceRequests"]
                 if s.get("State") in ("open", "active")]

    by_cluster: dict[str, list[dict[str, Any]]] = {}
    for i in instances:
        by_cluster.setdefault(_tags(i)[TAG_CLUSTER], []).append(i)

    def whole(cluster: str) -> str:
        """Why every resource of ``cluster`` goes ("" when it stays)."""
        if cluster not in known:
            return "cluster unknown here" if by_cluster.get(cluster) else "cluster torn down"
        if not _busy(known[cluster]) and _never_reached(known[cluster]):
            return "provision never finished"
        live = by_cluster.get(cluster, [])
        if live and all(_expired(_tags(i), now) for i in live):
            return "cluster expired"
        return ""

    reasons = {c: whole(c) for c in {_tags(x)[TAG_CLUSTER] for x in [*instances, *groups, *templates, *keys, *spots]}}
    out: list[Leftover] = []
    for s in spots:
        c = _tags(s)[TAG_CLUSTER]
        if reasons[c]:
            out.append(Leftover(region, "spot-request", s["SpotInstanceRequestId"], c, reasons[c], s.get("State", "")))
    for i in instances:
        t = _tags(i)
        c = t[TAG_CLUSTER]
        why = reasons[c] or ("expired" if _expired(t, now) else "")
        if why:
            out.append(Leftover(region, "instance", i["InstanceId"], c, why, i["State"]["Name"]))
    for lt in templates:
        c = _tags(lt)[TAG_CLUSTER]
        if reasons[c]:
            out.append(Leftover(region, "launch-template", lt["LaunchTemplateId"], c, reasons[c],
                                name=lt.get("LaunchTemplateName", "")))
    for k in keys:
        c = _tags(k)[TAG_CLUSTER]
        if reasons[c]:
            out.append(Leftover(region, "key-pair", k.get("KeyPairId") or k["KeyName"], c, reasons[c],
                                name=k["KeyName"]))
    for g in groups:
        c = _tags(g)[TAG_CLUSTER]
        if reasons[c]:
            out.append(Leftover(region, "security-group", g["GroupId"], c, reasons[c], name=g.get("GroupName", "")))
    return out


def remove(found: Sequence[Leftover], say: Say, home: Path | None = None,
           wait_terminated: float = WAIT_TERMINATED) -> GcResult:
    """Remove exactly ``found`` (from ``scan``), in dependency order; the local records of clusters
    whose provision never finished are forgotten once nothing of them is left."""
    result = GcResult(found=list(found))
    for region in dict.fromkeys(x.region for x in found):
        _remove_region(region, [x for x in found if x.region == region], result, say, wait_terminated)
    home = home or vca_home()
    known = _known(home)
    for cluster in dict.fromkeys(x.cluster for x in result.removed if x.reason == "provision never finished"):
        if cluster in known and not any(x.cluster == cluster for x in found if f"{x.kind} {x.id}" in result.failed):
            known[cluster][1].forget()
            result.forgotten.append(cluster)
    return result


def _remove_region(region: str, mine: list[Leftover], result: GcResult, say: Say, wait_terminated: float) -> None:
    from botocore.exceptions import ClientError

    from ..providers.ec2 import api

    ec2 = api.client(region)

    def delete(x: Leftover, retry_dependency: float = 0.0) -> None:
        """One delete call; DependencyViolation retried for ``retry_dependency`` seconds."""
        deadline = time.monotonic() + retry_dependency
        while True:
            try:
                with api.aws_errors(region):
                    if x.kind == "launch-template":
                        ec2.delete_launch_template(LaunchTemplateId=x.id)
                    elif x.kind == "key-pair":
                        ec2.delete_key_pair(KeyName=x.name)
                    else:
                        ec2.delete_security_group(GroupId=x.id)
                result.removed.append(x)
                return
            except (ClientError, VcaError) as exc:
                if "DependencyViolation" in str(exc) and time.monotonic() < deadline:
                    time.sleep(2)
                    continue
                result.failed[f"{x.kind} {x.id}"] = str(exc)[:200]
                return

    spots = [x for x in mine if x.kind == "spot-request"]
    if spots:
        with api.aws_errors(region):
            ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[x.id for x in spots])
        result.removed += spots
    insts = [x for x in mine if x.kind == "instance"]
    for start in range(0, len(insts), 1000):
        chunk = insts[start:start + 1000]
        with api.aws_errors(region):
            ec2.terminate_instances(InstanceIds=[x.id for x in chunk])
        result.removed += chunk
    if insts:
        say(f"{region}: terminating {len(insts)} instance{'s' if len(insts) != 1 else ''}")
        _wait_terminated(ec2, region, [x.id for x in insts], wait_terminated)
    for x in mine:
        if x.kind in ("launch-template", "key-pair"):
            delete(x)
    for x in mine:  # terminating instances may hold a group a little longer
        if x.kind == "security-group":
            delete(x, retry_dependency=60.0)


def _wait_terminated(ec2: Any, region: str, ids: list[str], timeout: float) -> None:
    from ..providers.ec2 import api

    deadline = time.monotonic() + timeout
    left = set(ids)
    while left and time.monotonic() < deadline:
        with api.aws_errors(region):
            found = api.instances_by_id(ec2, sorted(left), region)
        left = {i for i, inst in found.items() if inst.state != "terminated"}
        if left:
            time.sleep(2)


def gc(regions: Sequence[str], yes: bool, say: Say, home: Path | None = None) -> GcResult:
    """Scan ``regions`` (default: see ``default_regions``) and, with ``yes``, remove what was found."""
    regions = list(dict.fromkeys(regions)) or default_regions(home)
    if not regions:
        raise UsageError("no region to look in", "name one with --region (or set AWS_REGION)")
    found = [x for r in regions for x in scan(r, home)]
    if not yes or not found:
        return GcResult(found=found)
    return remove(found, say, home)
