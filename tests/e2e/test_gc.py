"""`vca gc` and `vca guard` against a real moto server: leftovers found by their tags and removed, the
untagged decoy never touched; `vca provision` killed with SIGKILL at steps of its launch leaves nothing
that `vca gc --yes` does not remove; `vca guard --lifetime` changes the expiry tags."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import VCA_ARGV, vca
from moto_fixtures import AMI, MotoServer, moto, moto_server

from vcloud_ansible.state import ClusterState

__all__ = ["moto", "moto_server"]

pytestmark = pytest.mark.aws

PAST = "2020-01-01T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"


def _tags(cluster: str, expires: str = FUTURE, **extra: str) -> list[dict[str, str]]:
    tags = {"vca:cluster": cluster, "vca:owner": "someone@somewhere", "vca:expires-at": expires, **extra}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _instance(ec2: Any, tags: list[dict[str, str]] | None) -> str:
    spec = [{"ResourceType": "instance", "Tags": tags}] if tags else []
    return str(ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 TagSpecifications=spec)["Instances"][0]["InstanceId"])


def _group(ec2: Any, name: str, tags: list[dict[str, str]] | None) -> str:
    spec = [{"ResourceType": "security-group", "Tags": tags}] if tags else []
    return str(ec2.create_security_group(GroupName=name, Description="x", TagSpecifications=spec)["GroupId"])


def _known_cluster(home: Path, name: str) -> None:
    """A cluster as vca keeps it after a provision whose nodes answered (record, key, a learnt host key)."""
    state = ClusterState(name, home)
    state.create("ec2", {"region": "us-east-1", "owner": "me@here"})
    state.known_hosts.write_text(f"{name}-0 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n")


def vca_resources(ec2: Any) -> Counter[str]:
    """Everything tagged vca:cluster that still exists, counted by kind."""
    tagged = [{"Name": "tag-key", "Values": ["vca:cluster"]}]
    n: Counter[str] = Counter()
    n["instance"] = sum(1 for r in ec2.describe_instances(Filters=tagged)["Reservations"] for i in r["Instances"]
                        if i["State"]["Name"] not in ("terminated", "shutting-down"))
    n["security-group"] = len(ec2.describe_security_groups(Filters=tagged)["SecurityGroups"])
    n["launch-template"] = len(ec2.describe_launch_templates(Filters=tagged)["LaunchTemplates"])
    n["key-pair"] = len(ec2.describe_key_pairs(Filters=tagged)["KeyPairs"])
    return +n


def _state(ec2: Any, iid: str) -> str:
    return str(ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"])


def test_gc_lists_then_removes_exactly_the_leftovers(moto: MotoServer, vca_home: Path) -> None:
    ec2 = moto.ec2()
    torn_group = _group(ec2, "vca-torn", _tags("torn"))  # its cluster was torn down: only the group is left
    ghost = _instance(ec2, _tags("ghost", **{"vca:index": "0"}))  # a cluster this machine does not know
    _known_cluster(vca_home, "old")  # known here, every instance past its expiry
    old = _instance(ec2, _tags("old", PAST, **{"vca:index": "0"}))
    old_group = _group(ec2, "vca-old", _tags("old"))
    _known_cluster(vca_home, "live")  # known here and alive: only its expired node goes
    live_ok = _instance(ec2, _tags("live", FUTURE, **{"vca:index": "0"}))
    live_late = _instance(ec2, _tags("live", PAST, **{"vca:index": "1"}))
    live_group = _group(ec2, "vca-live", _tags("live"))
    decoy = _instance(ec2, None)  # no tags at all: never touched
    decoy_group = _group(ec2, "someone-elses", [{"Key": "team", "Value": "x"}])

    res = vca("gc", "--json")
    found = json.loads(res.stdout)["found"]
    got = {(x["kind"], x["id"]): x["reason"] for x in found}
    assert got == {("security-group", torn_group): "cluster torn down",
                   ("instance", ghost): "cluster unknown here",
                   ("instance", old): "cluster expired", ("security-group", old_group): "cluster expired",
                   ("instance", live_late): "expired"}, got
    assert "dry run: 3 instances, 2 security-groups would be removed" in res.stderr, res.stderr
    assert all(_state(ec2, i) == "running" for i in (ghost, old, live_ok, live_late, decoy))  # nothing changed

    moto.reset_calls()
    res = vca("gc", "--yes")
    assert "removed 3 instances, 2 security-groups" in res.stderr, res.stderr
    assert moto.calls()["TerminateInstances"] == 1
    for i in (ghost, old, live_late):
        assert _state(ec2, i) in ("terminated", "shutting-down")
    assert _state(ec2, live_ok) == "running" and _state(ec2, decoy) == "running"
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert live_group in groups and decoy_group in groups and not groups & {torn_group, old_group}
    assert vca_resources(ec2) == Counter({"instance": 1, "security-group": 1})  # the live cluster's own


def _kill_provisions(moto: MotoServer, steps: dict[str, str], home: Path) -> None:
    """Run `vca provision` on moto for each cluster at once and SIGKILL each (its process group) as soon
    as its step is seen: "group" (its security group exists), "template" (its launch template exists),
    "instances" (RunInstances answered) or "tagging" (a node's index tag is on: the launch is tagging)."""
    ec2 = moto.ec2(agent="vca-test-standin")

    def seen(cluster: str, step: str) -> bool:
        tagged = [{"Name": "tag:vca:cluster", "Values": [cluster]}]
        if step == "group":
            return bool(ec2.describe_security_groups(Filters=tagged)["SecurityGroups"])
        if step == "template":
            return bool(ec2.describe_launch_templates(Filters=tagged)["LaunchTemplates"])
        instances = [i for r in ec2.describe_instances(Filters=tagged)["Reservations"] for i in r["Instances"]]
        if step == "tagging":
            return any(t["Key"] == "vca:index" for i in instances for t in i.get("Tags", []))
        return bool(instances)

    procs = {c: subprocess.Popen([*VCA_ARGV, "-c", c, "provision", "--provider", "ec2", "--image", AMI,
                                  "--instance-type", "t3.micro", "--user", "root", "--ssh-via", "tag",
                                  "--ssh-cidr", "10.0.0.0/8", "2"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                 env={**os.environ, "VCA_HOME": str(home)})
             for c in steps}
    try:
        deadline = time.monotonic() + 180
        waiting = dict(steps)
        while waiting:
            for c, step in list(waiting.items()):
                if seen(c, step):
                    os.killpg(procs[c].pid, signal.SIGKILL)
                    del waiting[c]
                else:
                    assert procs[c].poll() is None, f"provision of {c} ended before the {step} step"
            assert time.monotonic() < deadline, f"steps not reached within 180 s: {waiting}"
            time.sleep(0.05)
    finally:
        for p in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_provision_killed_at_each_step_leaves_nothing_after_gc(moto: MotoServer, vca_home: Path) -> None:
    ec2 = moto.ec2()
    decoy = _instance(ec2, None)
    steps = {"kg": "group", "kt": "template", "ki": "instances", "kx": "tagging"}
    _kill_provisions(moto, steps, vca_home)
    left = vca_resources(ec2)
    assert left["security-group"] == 4 and left["launch-template"] >= 3 and left["instance"] >= 2, left
    res = vca("gc", "--yes")
    assert "forgot clusters" in res.stderr and all(c in res.stderr for c in steps), res.stderr
    assert vca_resources(ec2) == Counter(), vca_resources(ec2)  # 0 of every kind
    assert not any((vca_home / "clusters" / c).exists() for c in steps)
    assert _state(ec2, decoy) == "running"


def test_guard_lifetime_changes_the_expiry_tags(moto: MotoServer, vca_home: Path) -> None:
    ec2 = moto.ec2()
    _known_cluster(vca_home, "tg")
    moto.reset_calls()
    a = _instance(ec2, _tags("tg", FUTURE, **{"vca:index": "0", "vca:role": "head", "vca:ssh_host": "127.0.0.1",
                                                 "vca:ssh_port": "9"}))
    # no node answers here (nothing listens for it): the tags change, the nodes are named as missed
    res = vca("-c", "tg", "guard", "--lifetime", "+2h", "--idle-action", "terminate", check=False)
    tags = {t["Key"]: t["Value"] for t in
            ec2.describe_instances(InstanceIds=[a])["Reservations"][0]["Instances"][0]["Tags"]}
    expires = time.mktime(time.strptime(tags["vca:expires-at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(expires - (time.time() + 7200)) < 120, tags
    # moto keeps no shutdown behaviour (it always answers "stop"): the request itself is what vca sent
    entries = [json.loads(line) for line in moto.recording.read_text().splitlines() if line.strip()]
    bodies = [urllib.parse.unquote(base64.b64decode(e["body"]).decode() if e.get("body_encoded")
                                   else e.get("body") or "") for e in entries]
    asked = [b for b in bodies if "Action=ModifyInstanceAttribute" in b]
    assert len(asked) == 1 and f"InstanceId={a}" in asked[0], asked
    assert "InstanceInitiatedShutdownBehavior.Value=terminate" in asked[0], asked
    assert "1 instances tagged" in res.stderr, res.stderr
    # instances launched later get the behaviour at launch (RunInstances), from the cluster's settings
    assert ClusterState("tg", vca_home).load().settings["shutdown_behavior"] == "terminate"
