"""The shape of an EC2 cluster (a moto server is EC2, lab nodes stand in for its instances): a head of
its own instance type made first, nodes named by role, stop and start with the same indexes and disks
(host keys checked again), remove the highest-index worker, a spot worker, heal of a terminated head
and spot worker, import; a decoy instance is never touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import vca
from moto_fixtures import AMI, MotoServer, StandIns, moto, moto_server, standins
from test_ec2 import _indexes, _live, _tags, ec2_flags

__all__ = ["moto", "moto_server", "standins"]  # fixtures used by name below

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


def _states(moto: MotoServer, cluster: str) -> dict[int, str]:
    return {int(_tags(i)["vca:index"]): i["State"]["Name"] for i in _live(moto, cluster)}


def _decoy_state(ec2: Any, decoy: str) -> str:
    state: str = ec2.describe_instances(InstanceIds=[decoy])["Reservations"][0]["Instances"][0]["State"]["Name"]
    return state


@pytest.mark.lab
@pytest.mark.aws
def test_role_types_stop_start_remove_and_spot_on_ec2(moto: MotoServer, standins: StandIns, cluster_name: str) -> None:
    c = cluster_name
    ec2 = moto.ec2(agent="vca-test-standin")
    decoy = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0][
        "InstanceId"]
    moto.reset_calls()
    vca("-c", c, "provision", *ec2_flags(), "--head-instance-type", "t3.small", "3")
    standins.check()
    # The head of its own type, made first (its own launch), the workers of the cluster's type.
    live = sorted(_live(moto, c), key=lambda i: int(_tags(i)["vca:index"]))
    assert [(i["InstanceType"], _tags(i)["vca:role"]) for i in live] == [
        ("t3.small", "head"), ("t3.micro", "worker"), ("t3.micro", "worker")]
    assert moto.calls()["RunInstances"] == 2 and live[0]["LaunchTime"] <= live[1]["LaunchTime"]
    rows = json.loads(vca("-c", c, "status", "--json").stdout)
    assert [r["type"] for r in rows] == ["t3.small", "t3.micro", "t3.micro"]
    assert vca("-c", c, "connect", "head", "--", "hostname").returncode == 0
    vca("-c", c, "inject", str(HELLO))
    vca("-c", c, "wait", "--timeout", "120")
    release = vca("-c", c, "exec", "--node", "head", "--", "readlink ~/vca/current").stdout.split(": ")[1].strip()

    # Stop: the instances are stopped (not terminated), status shows it.
    moto.reset_calls()
    res = vca("-c", c, "power", "off", "--node", "workers")
    assert "powered off nodes 1-2" in res.stderr and moto.calls()["StopInstances"] == 1
    assert _states(moto, c) == {0: "running", 1: "stopped", 2: "stopped"}
    rows = {r["index"]: r["state"] for r in json.loads(vca("-c", c, "status", "--json").stdout)}
    assert rows == {0: "up", 1: "stopped", 2: "stopped"}

    # Start: same indexes, SSH works again with the pinned host keys, the release is still on disk.
    moto.reset_calls()
    res = vca("-c", c, "power", "on")
    standins.check()
    assert "powered on nodes 1-2" in res.stderr and moto.calls()["StartInstances"] == 1
    assert _states(moto, c) == {0: "running", 1: "running", 2: "running"}
    out = vca("-c", c, "exec", "--", "readlink ~/vca/current").stdout.splitlines()
    assert sorted(out) == [f"{c}-{i}: {release}" for i in range(3)]

    # Remove the highest-index idle worker: its instance is terminated; resize grows back.
    res = vca("-c", c, "remove", "--workers", "1", "--yes")
    assert "removed node 2" in res.stderr and _indexes(moto, c) == [0, 1]
    # Spot for some nodes only: a spot worker joins with the next index, tagged like the others.
    vca("-c", c, "provision", "1", "--role", "worker", "--spot", "--max-price", "0.05")
    standins.check()
    assert _indexes(moto, c) == [0, 1, 2]
    spot = next(i for i in _live(moto, c) if _tags(i)["vca:index"] == "2")
    assert _tags(spot)["vca:role"] == "worker" and spot.get("InstanceLifecycle") == "spot", spot
    rows = json.loads(vca("-c", c, "status", "--json").stdout)
    assert [r["lifecycle"] for r in rows] == ["on-demand", "on-demand", "spot"]
    assert all(r["state"] == "up" for r in rows)

    _heal_terminated_head_and_spot_worker(moto, standins, c, release)
    vca("-c", c, "teardown", "--yes")
    assert _live(moto, c) == [] and _decoy_state(ec2, decoy) == "running"
    standins.check()


def _heal_terminated_head_and_spot_worker(moto: MotoServer, standins: StandIns, c: str, release: str) -> None:
    """The head (its own type) and the spot worker are terminated behind vca's back (the console, a spot
    interruption): status shows them terminated, `vca heal` launches each as it was made (role, type,
    market, tags, expiry) under its index, and they get the release and the membership.

    What the stand-ins prove: the EC2 side (calls, tags, type, lifecycle as moto records them), a fresh
    machine with a new host key learnt through vca, the release started on it over SSH, and the other
    nodes' pushed known_hosts and member key accepted by it. The node-to-node connection goes to the
    stand-in's lab address (HostName override): the private addresses moto hands out are never used."""
    ec2 = moto.ec2(agent="vca-test-standin")
    old = {int(_tags(i)["vca:index"]): i for i in _live(moto, c)}
    known = f"~/.ssh/vca-{c}.known_hosts"
    old_key = vca("-c", c, "exec", "--node", "1", "--", f"grep '^{c}-2,' {known}").stdout
    ec2.terminate_instances(InstanceIds=[old[0]["InstanceId"], old[2]["InstanceId"]])
    res = vca("-c", c, "status", "--json", check=False)
    assert {r["index"]: r["state"] for r in json.loads(res.stdout)} == {0: "terminated", 1: "up", 2: "terminated"}
    res = vca("-c", c, "status", check=False)
    assert f"{c}-0, {c}-2 are gone: `vca heal` brings them back" in res.stderr, res.stderr

    moto.reset_calls()
    res = vca("-c", c, "heal", "--json")
    standins.check()
    healed = json.loads(res.stdout)
    assert [(n["index"], n["role"]) for n in healed] == [(0, "head"), (2, "worker")], res.stderr
    assert f"launching {c}-0 (head, t3.small" in res.stderr and f"launching {c}-2 (worker, t3.micro" in res.stderr
    assert moto.calls()["RunInstances"] == 2 and moto.calls()["TerminateInstances"] == 0  # one per role and market
    new = {int(_tags(i)["vca:index"]): i for i in _live(moto, c)}
    assert sorted(new) == [0, 1, 2] and new[1]["InstanceId"] == old[1]["InstanceId"]
    for i in (0, 2):
        assert new[i]["InstanceId"] != old[i]["InstanceId"] and new[i]["InstanceId"] == healed[i // 2]["instance"]
        assert new[i]["InstanceType"] == old[i]["InstanceType"]
        assert new[i].get("InstanceLifecycle") == old[i].get("InstanceLifecycle")
        for tag in ("vca:cluster", "vca:role", "vca:owner", "vca:expires-at", "Name"):
            assert _tags(new[i])[tag] == _tags(old[i])[tag], tag
    assert new[2].get("InstanceLifecycle") == "spot" and new[0]["InstanceType"] == "t3.small"

    # The release the cluster runs, started on the new machines, which know the cluster of 3.
    vca("-c", c, "wait", "--timeout", "120")
    out = vca("-c", c, "exec", "--node", "0,2", "--",
              "readlink ~/vca/current; sed -n 1,2p ~/vca/current/result.txt; cat /etc/machine-id").stdout
    for i in (0, 2):
        assert f"{c}-{i}: {release}\n{c}-{i}: index={i}\n{c}-{i}: nodes=3\n" in out, out
    machine = out.splitlines()[-1].split(": ")[1]  # node 2's, in node order
    # Node 1 holds node 2's new host key (pushed by vca) and reaches it with the cluster's member key,
    # strict host-key checking on; the old key is gone from its known_hosts.
    rows = {r["index"]: r for r in json.loads(vca("-c", c, "status", "--json").stdout)}
    assert all(r["state"] == "up" for r in rows.values())
    hop = vca("-c", c, "exec", "--node", "1", "--", f"grep '^{c}-2,' {known}; "
              f"ssh -o HostKeyAlias={c}-2 -o HostName={rows[2]['address']} {c}-2 cat /etc/machine-id").stdout
    new_key, reached = hop.splitlines()
    assert new_key != old_key.strip() and new_key.startswith(f"{c}-1: {c}-2,")
    assert reached == f"{c}-1: {machine}"
    res = vca("-c", c, "heal")
    assert "nothing to heal" in res.stderr and moto.calls()["RunInstances"] == 2


@pytest.mark.lab
@pytest.mark.aws
def test_import_adopts_only_the_instances_named(moto: MotoServer, standins: StandIns, cluster_name: str) -> None:
    c = cluster_name
    ec2 = moto.ec2(agent="vca-test-standin")

    def launch(tags: dict[str, str]) -> str:
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        iid: str = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                     **({"TagSpecifications": spec} if tags else {}))["Instances"][0]["InstanceId"]
        return iid

    vca("-c", c, "provision", *ec2_flags(), "1")
    vca("-c", c, "inject", str(HELLO))
    adopted, decoy, foreign = launch({}), launch({"Name": "decoy"}), launch({"vca:cluster": "someone-else"})
    res = vca("-c", c, "import", adopted)
    standins.check()
    assert "imported node 1" in res.stderr, res.stderr
    tags = _tags(next(i for i in _live(moto, c) if i["InstanceId"] == adopted))
    assert (tags["vca:index"], tags["vca:role"], tags["Name"]) == ("1", "worker", f"{c}-1")
    # It answers SSH with its learnt key, got the release, and the head knows the grown cluster.
    vca("-c", c, "wait", "--timeout", "120")
    assert vca("-c", c, "exec", "--node", f"{c}-1", "--", "sed -n 2p ~/vca/current/result.txt").stdout.strip() == \
        f"{c}-1: nodes=2"

    res = vca("-c", c, "import", foreign, check=False)
    assert res.returncode == 2 and "belongs to cluster 'someone-else'" in res.stderr
    res = vca("-c", c, "import", "i-0123456789abcdef0", check=False)
    assert res.returncode == 2 and "no EC2 instance i-0123456789abcdef0" in res.stderr
    res = vca("-c", c, "import", adopted, check=False)
    assert res.returncode == 2 and "is node 1 of cluster" in res.stderr
    assert _indexes(moto, c) == [0, 1]

    vca("-c", c, "teardown", "--yes")
    assert _live(moto, c) == []
    for iid, name in ((decoy, "decoy"), (foreign, None)):  # never touched: running, tags as they were
        inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        assert inst["State"]["Name"] == "running" and not any(k.startswith("vca:") and k != "vca:cluster"
                                                               for k in _tags(inst)), inst
        assert _tags(inst).get("Name") == name
    standins.check()
