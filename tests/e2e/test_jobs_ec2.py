"""`vca jobs run --provider ec2`: a moto server (bound to the lab bridge, so the nodes upload to its S3)
is EC2 and S3; lab nodes stand in for its instances.

What EC2 itself does when an instance's OS powers off (stop or terminate, per the instance's
InstanceInitiatedShutdownBehavior) moto cannot see: the stand-in watcher here observes the lab node's
guest exit on its own and then applies the attribute vca launched the instance with, as EC2 would. So
this proves that vca asks for `terminate`, that the node powers itself off only after its upload was
verified, and that status/wait read the instances' state from EC2; it does not prove EC2's own handling
of the attribute (documented AWS behaviour).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import vca
from moto_fixtures import AMI, STANDIN_AGENT, MotoServer, StandIns, aws_env, start_moto

pytestmark = [pytest.mark.lab, pytest.mark.aws]

BUCKET = "ec2-job-results"


class PoweroffStandIns(StandIns):
    """StandIns that also act for EC2 on a guest's own poweroff: a lab node whose guest exited while its
    instance runs gets the instance's InstanceInitiatedShutdownBehavior applied in moto."""

    powered_off: dict[str, float]

    def _round(self, ec2: Any) -> None:
        from vcloud_ansible.lab.manager import Lab

        lab = Lab()
        by_index = {n.index: n for n in lab.nodes(self.lab_cluster)}
        for iid, index in list(self.by_instance.items()):
            n = by_index.get(index)
            # (the lab marks a guest that powered itself off as stopped; this test never stops one itself)
            if n is None or lab.is_running(n) or lab.guest_running(n):
                continue
            state = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]
            if state != "running":
                continue
            how = ec2.describe_instance_attribute(InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior")[
                "InstanceInitiatedShutdownBehavior"]["Value"]
            self.powered_off[iid] = time.time()
            (ec2.terminate_instances if how == "terminate" else ec2.stop_instances)(InstanceIds=[iid])
        super()._round(ec2)


Setup = tuple[str, MotoServer, "PoweroffStandIns", dict[str, str]]


@pytest.fixture
def ec2_jobs(lab_env: Path, vca_home: Path, tmp_path: Path) -> Iterator[Setup]:
    from conftest import module_lab_cluster

    from vcloud_ansible.lab.config import LabConfig

    name = "je" + uuid.uuid4().hex[:6]
    # One idle node of another cluster keeps the lab bridge (moto's address on it) up throughout.
    with module_lab_cluster(lab_env, tmp_path / "keeper-home", "keep", 1):
        moto = start_moto(tmp_path / "moto", host=LabConfig.from_env().gateway)
        env = {**aws_env(moto.url, tmp_path), "VCA_HOME": str(vca_home)}
        env["NO_PROXY"] = env["no_proxy"] = f"127.0.0.1,localhost,{moto.host}"
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # the stand-ins' in-process Lab and boto3
        s = PoweroffStandIns(moto, name, vca_home, lab_cluster=name + "s", owner=f"standin:{vca_home}")
        s.powered_off = {}
        s.start()
        try:
            yield name, moto, s, env
        finally:
            vca("jobs", "cancel", name, env=env, check=False)
            s.stop()
            moto.stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _instances(ec2: Any, name: str) -> list[dict[str, Any]]:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:vca:cluster", "Values": [name]}])
    return [i for p in pages for r in p["Reservations"] for i in r["Instances"]]


def _tags(inst: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


def test_job_array_on_ec2(ec2_jobs: Setup, tmp_path: Path) -> None:
    import boto3

    name, moto, standins, env = ec2_jobs
    ec2 = moto.ec2(agent=STANDIN_AGENT)
    s3 = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="x").client(
        "s3", region_name="us-east-1", endpoint_url=moto.url)
    s3.create_bucket(Bucket=BUCKET)
    csv = tmp_path / "jobs.csv"
    csv.write_text("name,instance_type,command,timeout\n"
                   'a,t3.micro,"mkdir -p results; echo $VCA_JOB_NAME > results/out.txt",600\n'
                   'b,t3.small,"echo failing >&2; exit 3",600\n'
                   'c,t3.micro,"echo c",600\n'
                   'd,t3.micro,"sleep 300",600\n')
    # A group of the user's that lets SSH in from anywhere is refused for job nodes; nothing is made.
    open_sg = ec2.create_security_group(GroupName="wide-open", Description="open")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=open_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    refused = vca("jobs", "run", str(csv), "--name", name + "x", "--bucket", BUCKET, "--provider", "ec2",
                  "--image", AMI, "--security-group", open_sg, env=env, check=False)
    assert refused.returncode == 2 and f"security group {open_sg} is open to 0.0.0.0/0" in refused.stderr, refused
    assert not _instances(ec2, name + "x") and "Contents" not in s3.list_objects_v2(Bucket=BUCKET)

    t0 = time.time()
    moto.reset_calls()
    res = vca("jobs", "run", str(csv), "--name", name, "--bucket", BUCKET, "--provider", "ec2", "--image", AMI,
              "--user", "root", "--ssh-via", "tag", "--ssh-cidr", os.environ["VCA_LAB_SUBNET"],
              "--ssh-timeout", "120", env=env, timeout=300)
    assert f"job array '{name}': 4 jobs started" in res.stderr, res.stderr
    ran_for = time.time() - t0
    assert moto.calls()["RunInstances"] == 2  # one launch per (instance type, lifetime)

    # One instance per row, of the row's type; its own poweroff terminates it; it expires at its
    # timeout plus the margin (600 + 4500 s).
    insts = _instances(ec2, name)
    launches = {j: json.loads(s3.get_object(Bucket=BUCKET, Key=f"{name}/{j}/.vca/launch-1.json")["Body"].read())
                for j in "abcd"}
    by_id = {i["InstanceId"]: i for i in insts}
    assert sorted(by_id) == sorted(launch["node"] for launch in launches.values())
    assert {j: by_id[launch["node"]]["InstanceType"] for j, launch in launches.items()} == {
        "a": "t3.micro", "b": "t3.small", "c": "t3.micro", "d": "t3.micro"}
    for iid, inst in by_id.items():
        how = ec2.describe_instance_attribute(InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior")
        assert how["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate", iid
        expires = datetime.strptime(_tags(inst)["vca:expires-at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert t0 + 5100 - 5 <= expires.timestamp() <= time.time() + 5100 + 5, (iid, _tags(inst))

    # The security group: SSH only from the lab range, everything else only from the group itself.
    groups = ec2.describe_security_groups(Filters=[{"Name": "tag:vca:cluster", "Values": [name]}])["SecurityGroups"]
    assert len(groups) == 1
    for perm in groups[0]["IpPermissions"]:
        assert all(r["CidrIp"] != "0.0.0.0/0" for r in perm.get("IpRanges", [])), perm
        assert not perm.get("Ipv6Ranges"), perm
        if perm.get("IpRanges"):
            assert (perm["FromPort"], perm["ToPort"]) == (22, 22)
            assert [r["CidrIp"] for r in perm["IpRanges"]] == [os.environ["VCA_LAB_SUBNET"]]
        else:
            assert [p["GroupId"] for p in perm["UserIdGroupPairs"]] == [groups[0]["GroupId"]], perm

    # Nothing of vca runs from here: each node uploads, verifies, powers off, and the instance ends;
    # d's instance is terminated under its job (as a spot interruption would).
    killed = launches["d"]["node"]
    ec2.terminate_instances(InstanceIds=[killed])
    end = time.monotonic() + 240  # generous: with another test process busy, boots and uploads are slow
    while time.monotonic() < end and any(i["State"]["Name"] != "terminated" for i in _instances(ec2, name)):
        standins.check()
        time.sleep(1)
    now = {i["InstanceId"]: i["State"]["Name"] for i in _instances(ec2, name)}
    assert set(now.values()) == {"terminated"}, {j: now.get(launch["node"]) for j, launch in launches.items()}
    assert sorted(standins.powered_off) == sorted(set(by_id) - {killed})  # by its own poweroff, not by vca
    assert moto.calls()["TerminateInstances"] == 0  # (vca's own calls since `jobs run` began)
    settled = time.time() - t0
    # Each uploaded (and verified) before it powered off.
    for j, launch in launches.items():
        if j == "d":
            continue
        head = s3.head_object(Bucket=BUCKET, Key=f"{name}/{j}/manifest.json")
        assert head["LastModified"].timestamp() <= standins.powered_off[launch["node"]] + 1

    # Status from a fresh VCA_HOME: the bucket and EC2's listing (every instance gone; d's without a result).
    fresh = {**env, "VCA_HOME": str(tmp_path / "fresh-home")}
    doc = json.loads(vca("jobs", "status", name, "--bucket", BUCKET, "--json", env=fresh).stdout)
    assert {j["name"]: j["label"] for j in doc["jobs"]} == {
        "a": "done(0)", "b": "failed(3)", "c": "done(0)", "d": "lost"}, doc
    moto.reset_calls()
    # wait (no --retries: d stays lost; starting it again is the provider-neutral follow loop, tested on
    # the lab and in the unit tests) ends at once and names b and d.
    waited = vca("jobs", "wait", name, "--interval", "1", "--timeout", "60", env=env, check=False)
    assert waited.returncode == 1 and "b (failed(3))" in waited.stderr and "d (lost)" in waited.stderr, waited.stderr
    assert moto.calls()["RunInstances"] == 0
    assert not [i for i in _instances(ec2, name) if i["State"]["Name"] in ("pending", "running")]

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{name}/")["Contents"]}
    assert not [k for k in keys if k.startswith(f"{name}/d/") and "/.vca/" not in k]  # d never ended
    for j in "abc":
        for rel in ("stdout", "stderr", "result.json", "manifest.json"):
            assert f"{name}/{j}/{rel}" in keys, (j, rel)
    assert f"{name}/a/results/out.txt" in keys
    man = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{name}/a/manifest.json")["Body"].read())
    assert man["exit_code"] == 0 and "results/out.txt" in man["files"]
    out = tmp_path / "out"
    vca("jobs", "fetch", name, str(out), env=env)
    assert (out / "a/results/out.txt").read_text() == "a\n" and (out / "b/stderr").read_text() == "failing\n"

    # cancel: the group, key pair and template go too; nothing tagged with the array is left.
    vca("jobs", "cancel", name, env=env)
    assert not ec2.describe_security_groups(Filters=[{"Name": "tag:vca:cluster", "Values": [name]}])[
        "SecurityGroups"]
    assert all(i["State"]["Name"] == "terminated" for i in _instances(ec2, name))
    standins.check()
    print(f"jobs run (2 launches, 4 instances) returned after {ran_for:.1f} s; all terminated by their own "
          f"poweroff {settled:.1f} s after the start")
