"""Provider ec2 end to end: a real moto server is EC2, lab nodes stand in for its instances (reached
through their vca:ssh_host tags), and the real CLI, Ansible and SSH do the rest."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import VCA_ARGV, raw_ansible, vca
from moto_fixtures import AMI, AMI_NAME, SECRET_KEY, MotoServer, StandIns, moto, moto_server, standins

__all__ = ["moto", "moto_server", "standins"]  # fixtures used by name below




def ec2_flags() -> tuple[str, ...]:
    """What the stand-ins need: SSH only through the tag (never to a moto address), the lab's login
    user, the session's lab network as the allowed SSH range (no look-up of a public address)."""
    return ("--provider", "ec2", "--image", AMI, "--instance-type", "t3.micro", "--user", "root",
            "--ssh-via", "tag", "--ssh-cidr", os.environ["VCA_LAB_SUBNET"], "--ssh-timeout", "120")


def _live(moto: MotoServer, cluster: str) -> list[dict[str, Any]]:
    ec2 = moto.ec2(agent="vca-test-standin")
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:vca:cluster", "Values": [cluster]},
                 {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    return [i for p in pages for r in p["Reservations"] for i in r["Instances"]]


def _tags(inst: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


def _tagged(ec2: Any, call: str, key: str, cluster: str) -> list[dict[str, Any]]:
    """Resources of one kind tagged with the cluster (security groups, key pairs, templates)."""
    found: list[dict[str, Any]] = getattr(ec2, call)(
        Filters=[{"Name": "tag:vca:cluster", "Values": [cluster]}])[key]
    return found


def _indexes(moto: MotoServer, cluster: str) -> list[int]:
    return sorted(int(_tags(i).get("vca:index", "-1")) for i in _live(moto, cluster))


def _plain(value: Any) -> str:
    """ansible-inventory --list shows values from EC2 as {"__ansible_unsafe": "..."} (never templated)."""
    return str(value["__ansible_unsafe"] if isinstance(value, dict) else value)



@pytest.mark.lab
@pytest.mark.aws
def test_provision_inventory_run_grow_teardown(moto: MotoServer, standins: StandIns, cluster_name: str,
                                               vca_home: Path, tmp_path: Path) -> None:
    c = cluster_name
    ec2 = moto.ec2(agent="vca-test-standin")
    # Someone else's instance in the same account and region: teardown must not touch it.
    decoy = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                              TagSpecifications=[{"ResourceType": "instance",
                                                  "Tags": [{"Key": "Name", "Value": f"{c}-0"}]}],
                              )["Instances"][0]["InstanceId"]
    moto.reset_calls()

    res = vca("-c", c, "provision", *ec2_flags(), "--tag", "project=vca-tests", "3")
    assert "added nodes 0-2 (3 nodes in all)" in res.stderr, res.stderr
    calls = moto.calls()
    # One launch request; per node one CreateTags; the rest is a fixed cost (checks, key, group,
    # template, SSH rounds) that bench/provision.py shows shrinking to < 3 calls per node from 10 on.
    assert calls["RunInstances"] == 1 and calls["CreateTags"] == 3, calls
    assert sum(calls.values()) <= 30, calls
    live = _live(moto, c)
    assert sorted(int(_tags(i)["vca:index"]) for i in live) == [0, 1, 2]
    for inst in live:
        tags = _tags(inst)
        assert tags["vca:cluster"] == c and tags["project"] == "vca-tests"
        assert tags["vca:role"] == ("head" if tags["vca:index"] == "0" else "worker")
        assert tags["vca:owner"] and tags["vca:expires-at"].endswith("Z")
        assert tags["Name"] == f"{c}-{tags['vca:index']}"
    standins.check()

    # The security group: SSH from the given range only, everything between members, never the world.
    [group] = _tagged(ec2, "describe_security_groups", "SecurityGroups", c)
    rules = group["IpPermissions"]
    ssh = [p for p in rules if p.get("FromPort") == 22]
    assert [r["CidrIp"] for p in ssh for r in p.get("IpRanges", [])] == [os.environ["VCA_LAB_SUBNET"]]
    assert any(p.get("IpProtocol") == "-1" and p.get("UserIdGroupPairs") for p in rules)
    assert not any(r.get("CidrIp") == "0.0.0.0/0" for p in rules for r in p.get("IpRanges", []))

    # The raw aws_ec2 inventory: three hosts, their indexes from the tags, groups by role.
    inv = vca("-c", c, "inventory").stdout.strip()
    assert inv.endswith("aws_ec2.yml")
    listed = raw_ansible("ansible-inventory", "-i", inv, "--list")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    hostvars = data["_meta"]["hostvars"]
    assert sorted(hostvars) == [f"{c}-{i}" for i in range(3)]
    assert sorted(v["vca_node_index"] for v in hostvars.values()) == [0, 1, 2]
    assert data["head"]["hosts"] == [f"{c}-0"]
    assert sorted(data["workers"]["hosts"]) == [f"{c}-1", f"{c}-2"]
    assert sorted(data["role_worker"]["hosts"]) == [f"{c}-1", f"{c}-2"]
    lab_net = ipaddress.ip_network(os.environ["VCA_LAB_SUBNET"])
    assert all(ipaddress.ip_address(_plain(v["ansible_host"])) in lab_net for v in hostvars.values())
    assert all(_plain(v["ansible_user"]) == "root" for v in hostvars.values())

    # SSH and Ansible reach every node through the EC2 code path.
    res = vca("-c", c, "exec", "--all", "--", "echo ok")
    assert sorted(res.stdout.splitlines()) == [f"{c}-{i}: ok" for i in range(3)]
    vca("-c", c, "run", "ping")

    # Inject and collect through the EC2 inventory: every node runs hello and its result comes back,
    # traced to the instance that made it.
    hello = Path(__file__).resolve().parents[2] / "examples" / "hello"
    vca("-c", c, "inject", str(hello))
    vca("-c", c, "wait", "--timeout", "120")
    out = tmp_path / "results"
    vca("-c", c, "collect", "result.txt", str(out))
    for i in range(3):
        lines = (out / f"{c}-{i}" / "result.txt").read_text().splitlines()
        assert lines[0] == f"index={i}" and lines[1] == "nodes=3"
    manifest = json.loads((out / "vca-manifest.json").read_text())
    ids = {e["node_index"]: e["instance_id"] for e in manifest["files"]}
    assert sorted(ids) == [0, 1, 2] and all(str(v).startswith("i-") for v in ids.values())

    # Growing continues the indexes.
    moto.reset_calls()
    res = vca("-c", c, "provision", "2", check=False)
    standins.check()
    assert res.returncode == 0, res.stderr
    assert "added nodes 3-4 (5 nodes in all)" in res.stderr, res.stderr
    assert moto.calls()["RunInstances"] == 1
    assert _indexes(moto, c) == [0, 1, 2, 3, 4]
    res = vca("-c", c, "exec", "--node", "3-4", "--", "echo ok")
    assert sorted(res.stdout.splitlines()) == [f"{c}-3: ok", f"{c}-4: ok"]
    # The new nodes received the cluster's current release and ran it, knowing the grown cluster.
    vca("-c", c, "wait", "--timeout", "120")
    res = vca("-c", c, "exec", "--node", "3-4", "--", "sed -n 1,2p ~/vca/current/result.txt | tr '\\n' ' '")
    assert sorted(res.stdout.splitlines()) == [f"{c}-3: index=3 nodes=5 ", f"{c}-4: index=4 nodes=5 "]

    # status reads EC2: type, zone, launch time, lifecycle next to the SSH probe.
    rows = json.loads(vca("-c", c, "status", "--json").stdout)
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4]
    assert all(r["state"] == "up" for r in rows)
    details = rows[0]  # provider details are part of each row
    assert details["type"] == "t3.micro" and details["zone"].startswith("us-east-1")
    assert details["lifecycle"] == "on-demand" and details["launched"]
    assert details["instance"].startswith("i-")

    # The credentials came from the environment and went nowhere: not into settings, artifacts, logs.
    stored = [p for p in vca_home.rglob("*") if p.is_file() and SECRET_KEY.encode() in p.read_bytes()]
    assert stored == []

    # Teardown: all terminated (one call), group, key pair and template gone, the decoy untouched.
    moto.reset_calls()
    vca("-c", c, "teardown", "--yes")
    assert moto.calls()["TerminateInstances"] == 1
    assert _live(moto, c) == []
    for call, key in (("describe_security_groups", "SecurityGroups"), ("describe_key_pairs", "KeyPairs"),
                      ("describe_launch_templates", "LaunchTemplates")):
        assert _tagged(ec2, call, key, c) == []
    [res_decoy] = ec2.describe_instances(InstanceIds=[decoy])["Reservations"]
    assert res_decoy["Instances"][0]["State"]["Name"] == "running"
    assert vca("-c", c, "status", check=False).returncode != 0  # the cluster is forgotten
    standins.check()


@pytest.mark.lab
@pytest.mark.aws
def test_crash_converge_orphans_destroy(moto: MotoServer, standins: StandIns, cluster_name: str,
                                        vca_home: Path) -> None:
    c = cluster_name
    # Killed (the whole process group, as a crash would) right after the instances were requested.
    proc = subprocess.Popen([*VCA_ARGV, "-c", c, "provision",
                             *ec2_flags(), "--image-name", AMI_NAME, "--image-owner", "amazon", "--total", "3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _live(moto, c):
        assert proc.poll() is None, "provision ended before launching"
        assert time.monotonic() < deadline, "no instance was requested within 120 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(_live(moto, c)) == 3

    # Converging again finishes what was launched: no new instance, no orphan, indexes 0-2.
    moto.reset_calls()
    res = vca("-c", c, "provision", "--total", "3")
    assert moto.calls()["RunInstances"] == 0, res.stderr
    assert _indexes(moto, c) == [0, 1, 2]
    assert "3 nodes in all" in res.stderr
    res = vca("-c", c, "exec", "--", "true")
    assert "3 nodes: 3 ok" in res.stderr

    # Instances with the cluster tag but no index (a crash between launch and tagging, made here by
    # hand so that it surely happens) become nodes on the next run instead of running on unseen.
    ec2 = moto.ec2(agent="vca-test-standin")
    owner = _tags(_live(moto, c)[0])["vca:owner"]
    ec2.run_instances(ImageId=AMI, MinCount=2, MaxCount=2, InstanceType="t3.micro", TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "vca:cluster", "Value": c},
                                              {"Key": "vca:owner", "Value": owner}]}])
    moto.reset_calls()
    res = vca("-c", c, "provision", "--total", "5")
    assert "adopting 2 instances" in res.stderr and "added nodes 3-4" in res.stderr, res.stderr
    assert moto.calls()["RunInstances"] == 0
    assert _indexes(moto, c) == [0, 1, 2, 3, 4]

    # Converge is idempotent: run again, nothing launched, nothing added.
    moto.reset_calls()
    res = vca("-c", c, "provision", "--total", "5")
    assert "nothing added (5 nodes in all)" in res.stderr, res.stderr
    assert moto.calls()["RunInstances"] == 0
    assert len(_live(moto, c)) == 5

    # destroy forgets a cluster only once nothing of it is left; --purge does not abandon live ones.
    res = vca("-c", c, "destroy", "--yes", check=False)
    assert res.returncode != 0 and "still has" in res.stderr and "vca teardown" in res.stderr
    assert vca("-c", c, "destroy", "--yes", "--purge", check=False).returncode != 0
    assert (vca_home / "clusters" / c / "cluster.json").exists()

    vca("-c", c, "teardown", "--yes")
    assert _live(moto, c) == []
    standins.check()


# -- refusals: moto only, no lab --------------------------------------------------------------------

MUTATING = ("RunInstances", "ImportKeyPair", "CreateKeyPair", "CreateSecurityGroup", "CreateLaunchTemplate",
            "CreateTags", "AuthorizeSecurityGroupIngress")


@pytest.mark.aws
@pytest.mark.parametrize(("flags", "message"), [
    (("--region", "xx-nowhere-9"), "unknown AWS region 'xx-nowhere-9'"),
    (("--image", "ami-0123456789abcdef0"), "AMI ami-0123456789abcdef0 not found in region us-east-1"),
    (("--image-name", "no-such-image-*"), "no AMI named 'no-such-image-*'"),
    (("--instance-type", "t9.mega"), "instance type 't9.mega' does not exist in region us-east-1"),
    (("--instance-type", "t4g.micro"), "instance type t4g.micro runs arm64, the AMI is x86_64"),
    (("--ssh-cidr", "10.0.0.300/8"), "invalid address range '10.0.0.300/8'"),
    (("--key-name", "nobody"), "key pair 'nobody' not found"),
])
def test_bad_input_is_refused_before_anything_is_made(moto: MotoServer, vca_home: Path,
                                                      flags: tuple[str, ...], message: str) -> None:
    given = dict(zip(flags[::2], flags[1::2], strict=True))
    base = {"--image": AMI, "--ssh-cidr": "10.0.0.0/8", "--user": "root"}
    if "--image-name" in given:
        del base["--image"]
    args = [x for k, v in {**base, **given}.items() for x in (k, v)]
    res = vca("-c", "bad", "provision", "--provider", "ec2", *args, "2", check=False)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vca: error: ") and message in lines[0], res.stderr
    calls = moto.calls()
    assert not any(calls[m] for m in MUTATING), calls
    assert not (vca_home / "clusters" / "bad").exists()


@pytest.mark.aws
def test_missing_credentials_are_refused(moto: MotoServer, vca_home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    res = vca("-c", "nocreds", "provision", "--provider", "ec2", "--image", AMI, "--ssh-cidr", "10.0.0.0/8",
              check=False)
    assert res.returncode == 3
    assert res.stderr.strip().splitlines() == [
        "vca: error: no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "or run `aws configure`"]
    assert sum(moto.calls().values()) == 0
    assert not (vca_home / "clusters" / "nocreds").exists()


@pytest.mark.aws
def test_destroy_purge_and_broken_inventory(moto: MotoServer, vca_home: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster whose cloud side is empty is forgotten; one that cannot be checked only with --purge;
    an inventory that cannot be read is an error, never an empty cluster."""
    from vcloud_ansible.providers.ec2.provider import Ec2Provider
    from vcloud_ansible.state import ClusterState

    settings = {"region": "us-east-1", "owner": "tester@test", "user": "root", "ssh_via": "tag"}
    ClusterState("gone").create("ec2", settings)
    assert "forgotten" in vca("-c", "gone", "destroy", "--yes").stderr
    assert not (vca_home / "clusters" / "gone").exists()

    state = ClusterState("lost")
    state.create("ec2", settings)
    inventory = Ec2Provider().inventory_source(state)
    assert inventory is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the endpoint is gone
    listed = raw_ansible("ansible-inventory", "-i", str(inventory), "--list", timeout=120)
    assert listed.returncode != 0
    res = vca("-c", "lost", "destroy", "--yes", check=False)
    assert res.returncode != 0 and "cannot check what is left" in res.stderr and "--purge" in res.stderr
    assert (vca_home / "clusters" / "lost").exists()
    res = vca("-c", "lost", "destroy", "--yes", "--purge")
    assert "forgotten" in res.stderr
    assert not (vca_home / "clusters" / "lost").exists()


@pytest.mark.aws
def test_expired_nodes_are_shown_until_torn_down(moto: MotoServer, vca_home: Path) -> None:
    """Nodes past their vca:expires-at still cost money: status and clusters say so, teardown ends it.
    The instances have no vca:ssh_host tag, so nothing connects to the addresses moto hands out."""
    from vcloud_ansible.state import ClusterState

    c = "late"
    ClusterState(c).create("ec2", {"region": "us-east-1", "owner": "tester@test", "user": "root",
                                   "ssh_via": "tag"})
    ec2 = moto.ec2(agent="vca-test-standin")
    for index, expires in ((0, "2020-01-01T00:00:00Z"), (1, "never"), (2, "2999-01-01T00:00:00Z")):
        ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "vca:cluster", "Value": c},
                                                  {"Key": "vca:index", "Value": str(index)},
                                                  {"Key": "vca:expires-at", "Value": expires}]}])
    res = vca("-c", c, "status")
    assert "1 of 3 nodes of cluster 'late' expired" in res.stderr and "`vca -c late teardown`" in res.stderr
    rows = json.loads(vca("-c", c, "status", "--json").stdout)
    assert [r["expires"] for r in rows] == ["2020-01-01T00:00:00Z", "never", "2999-01-01T00:00:00Z"]
    res = vca("clusters")
    assert any(line.split()[:4] == [c, "ec2", "3", "(1"] for line in res.stdout.splitlines()), res.stdout
    assert "1 of 3 nodes of cluster 'late' expired" in res.stderr

    vca("-c", c, "teardown", "--yes")
    assert _live(moto, c) == []
    assert "late" not in vca("clusters").stdout


# -- issue 9: failed first provisions, bad inputs, a frozen endpoint (moto only, no lab) -----------

RESOURCE_KINDS = (("describe_security_groups", "SecurityGroups"), ("describe_key_pairs", "KeyPairs"),
                  ("describe_launch_templates", "LaunchTemplates"))


def _error_line(res: subprocess.CompletedProcess[str]) -> str:
    """The single `vca: error: ...` line of a failed command (progress lines may come before it)."""
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("vca: error: "), res.stderr
    assert sum(line.startswith("vca: error: ") for line in lines) == 1, res.stderr
    return lines[-1]


def _cloud_leftovers(moto: MotoServer, cluster: str) -> list[str]:
    """Everything tagged with the cluster that still exists: live instances, groups, key pairs, templates."""
    ec2 = moto.ec2(agent="vca-test-standin")
    left = [f"instance {i['InstanceId']}" for i in _live(moto, cluster)]
    for call, key in RESOURCE_KINDS:
        left += [f"{key} {r}" for r in _tagged(ec2, call, key, cluster)]
    return left


class Unreachable:
    """Tags every instance of ``cluster`` with vca:ssh_host/vca:ssh_port of a closed loopback port, as
    a port forwarder whose target never comes up would: every SSH attempt is refused at once."""

    def __init__(self, moto: MotoServer, cluster: str) -> None:
        import threading

        self.moto, self.cluster = moto, cluster
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.tagged: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Unreachable:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        ec2 = self.moto.ec2(agent="vca-test-standin")
        while not self._stop.wait(0.2):
            with contextlib.suppress(Exception):  # moto busy: next round
                for inst in _live(self.moto, self.cluster):
                    if inst["InstanceId"] not in self.tagged:
                        ec2.create_tags(Resources=[inst["InstanceId"]], Tags=[
                            {"Key": "vca:ssh_host", "Value": "127.0.0.1"},
                            {"Key": "vca:ssh_port", "Value": str(self.port)}])
                        self.tagged.add(inst["InstanceId"])


UNREACHABLE_FLAGS = ("--provider", "ec2", "--image", AMI, "--user", "root", "--ssh-via", "tag",
                     "--ssh-cidr", "10.0.0.0/8", "--ssh-timeout", "10")


@pytest.mark.aws
def test_first_provision_whose_nodes_never_answer_ssh_leaves_nothing(moto: MotoServer, vca_home: Path) -> None:
    """The instances, the security group, the key pair and the launch template made by the failed run
    are all removed, verified, and only then is the cluster forgotten."""
    c = "nossh"
    with Unreachable(moto, c) as unreachable:
        res = vca("-c", c, "provision", *UNREACHABLE_FLAGS, "2", check=False, timeout=240)
    assert len(unreachable.tagged) == 2, res.stderr  # the run really launched two instances
    assert res.returncode != 0
    assert "did not answer SSH within 10 s" in _error_line(res), res.stderr
    assert _cloud_leftovers(moto, c) == []
    assert not (vca_home / "clusters" / c).exists()
    res = vca("-c", c, "teardown", "--yes")
    assert "does not exist" in res.stderr


@pytest.mark.aws
def test_a_rollback_that_cannot_finish_keeps_the_cluster_for_teardown(moto: MotoServer, vca_home: Path) -> None:
    """Something tagged with the cluster that cannot be deleted (a volume in use by an instance that
    is not the cluster's) stops the rollback: the cluster stays known, the error says so, and
    `vca teardown` finishes the job once the volume is free."""
    c = "stuck"
    ec2 = moto.ec2(agent="vca-test-standin")
    other = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro")
    other_id = other["Instances"][0]["InstanceId"]
    zone = other["Instances"][0]["Placement"]["AvailabilityZone"]
    vol = ec2.create_volume(AvailabilityZone=zone, Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "vca:cluster", "Value": c}]}])["VolumeId"]
    ec2.attach_volume(VolumeId=vol, InstanceId=other_id, Device="/dev/sdf")
    moto.reset_calls()

    with Unreachable(moto, c) as unreachable:
        res = vca("-c", c, "provision", *UNREACHABLE_FLAGS, "1", check=False, timeout=240)
    assert len(unreachable.tagged) == 1, res.stderr
    assert res.returncode != 0
    line = _error_line(res)
    assert "did not answer SSH" in line and vol in line and f"vca -c {c} teardown" in line, line
    assert _live(moto, c) == []  # the instance is gone in any case
    assert (vca_home / "clusters" / c / "cluster.json").exists()  # kept for teardown

    ec2.detach_volume(VolumeId=vol, InstanceId=other_id, Device="/dev/sdf")  # moto needs all three
    vca("-c", c, "teardown", "--yes")
    assert _cloud_leftovers(moto, c) == []
    assert ec2.describe_volumes(Filters=[{"Name": "tag:vca:cluster", "Values": [c]}])["Volumes"] == []
    assert not (vca_home / "clusters" / c).exists()


@pytest.mark.aws
@pytest.mark.parametrize(("extra", "env", "words"), [
    (("--lifetime", "99999999999d"), {}, "lifetime '99999999999d' is longer than 365 days"),
    ((), {"AWS_ENDPOINT_URL": "notaurl"}, "the EC2 endpoint 'notaurl' is not a URL"),
    (("--spec", "/dev/zero"), {}, "spec file /dev/zero is not a regular file"),
    (("--spec", "{tmp}/bin.yml"), {}, "is not a YAML text file"),
    (("--spec", "{tmp}/big.yml"), {}, "is larger than 1 MiB"),
])
def test_refused_provision_inputs_change_nothing(moto: MotoServer, vca_home: Path, tmp_path: Path,
                                                 extra: tuple[str, ...], env: dict[str, str], words: str) -> None:
    (tmp_path / "bin.yml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "big.yml").write_text("# padding\n" * 120_000)
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    res = vca("-c", "bad", "provision", "--provider", "ec2", "--image", AMI, "--ssh-cidr", "10.0.0.0/8",
              *args, "1", check=False, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vca: error: ") and words in lines[0], res.stderr
    calls = moto.calls()
    assert not any(calls[m] for m in MUTATING), calls
    assert _cloud_leftovers(moto, "bad") == []
    assert not (vca_home / "clusters").exists() or not any((vca_home / "clusters").iterdir())


class FrozenEndpoint:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FrozenEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for conn in self.held:
            conn.close()
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.held) < 1000:
            with contextlib.suppress(TimeoutError):
                conn, _ = self.sock.accept()
                self.held.append(conn)


@pytest.mark.aws
def test_a_frozen_endpoint_is_bounded_and_said(moto: MotoServer, vca_home: Path) -> None:
    from vcloud_ansible.state import ClusterState

    c = "frozen"
    ClusterState(c).create("ec2", {"region": "us-east-1", "owner": "tester@test", "user": "root",
                                   "ssh_via": "tag"})
    with FrozenEndpoint() as frozen:
        started = time.monotonic()
        try:
            res = vca("-c", c, "status", check=False, env={"AWS_ENDPOINT_URL": frozen.url}, timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail("vca status on a frozen endpoint ran for more than 90 s")
        took = time.monotonic() - started
        assert frozen.held, "the endpoint was never called"
    assert res.returncode == 1, res.stderr
    assert took < 60, took
    lines = res.stderr.strip().splitlines()
    assert f"vca: waiting for the EC2 endpoint {frozen.url} ..." in lines, res.stderr
    assert lines[-1].startswith(f"vca: error: the EC2 endpoint {frozen.url} did not answer within "), res.stderr
    assert "Traceback" not in res.stderr
    assert (vca_home / "clusters" / c / "cluster.json").exists()


def test_spec_up_twice_then_down_leaves_nothing(moto: MotoServer, standins: StandIns, cluster_name: str,
                                                 vca_home: Path, tmp_path: Path) -> None:
    """An ec2 spec file: `vca up` makes what its plan said, again changes nothing, `vca down` leaves no
    instance, group, key pair or template of the cluster in the account, and no record here."""
    c = cluster_name
    spec = tmp_path / "vca.yml"
    spec.write_text(f"provider: ec2\nnodes: 2\nec2:\n  image: {AMI}\n  instance_type: t3.micro\n  user: root\n"
                    f"  ssh_via: tag\n  ssh_cidrs: [{os.environ['VCA_LAB_SUBNET']}]\n  ssh_timeout: 120\n")
    plan = json.loads(vca("-c", c, "up", str(spec), "--plan", "--json").stdout)
    assert not _cloud_leftovers(moto, c)  # the plan made nothing
    done = json.loads(vca("-c", c, "up", str(spec), "--json", timeout=600).stdout)
    assert done["changed"] and done["steps"] == plan["steps"], (plan, done)
    assert sorted(int(_tags(i)["vca:index"]) for i in _live(moto, c)) == [0, 1]
    standins.check()
    again = json.loads(vca("-c", c, "up", str(spec), "--json").stdout)
    assert again["changed"] is False and again["steps"] == [], again
    vca("-c", c, "down", str(spec), "--yes", timeout=600)
    assert _cloud_leftovers(moto, c) == []
    assert not (vca_home / "clusters" / c).exists()
