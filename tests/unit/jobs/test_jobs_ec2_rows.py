"""Job nodes on EC2 (vcloud_ansible.jobs.ec2 and JobArray._create): the settings a job array adds and
refuses, each row's expiry, one launch per instance type and lifetime. The moto run is
tests/e2e/test_jobs_ec2.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.jobs import ec2 as jobs_ec2
from vcloud_ansible.jobs.array import JobArray
from vcloud_ansible.jobs.spec import JobRow
from vcloud_ansible.node import Node


def test_job_settings_terminate_and_refuse_the_world() -> None:
    out = jobs_ec2.job_settings({"region": "eu-west-1", "ssh_cidrs": ("203.0.113.7/32",)})
    assert out["shutdown_behavior"] == "terminate" and out["region"] == "eu-west-1"
    for cidr in ("0.0.0.0/0", "::/0"):
        with pytest.raises(UsageError, match="whole internet"):
            jobs_ec2.job_settings({"ssh_cidrs": ("10.0.0.0/8", cidr)})
    with pytest.raises(UsageError, match="terminate"):
        jobs_ec2.job_settings({"shutdown_behavior": "stop"})
    for key in ("spot", "role", "worker_instance_type"):
        with pytest.raises(UsageError, match="does not apply to job nodes"):
            jobs_ec2.job_settings({key: "x"})


def test_lifetime_is_timeout_plus_margin() -> None:
    assert jobs_ec2.lifetime(600, 86400) == f"{600 + jobs_ec2.EXPIRY_MARGIN_S}s"
    assert jobs_ec2.lifetime(None, 86400) == "86400s"
    # what the provider's own lifetime parser accepts
    from vcloud_ansible.providers.ec2.settings import parse_lifetime

    assert parse_lifetime(jobs_ec2.lifetime(600, 86400)) == 600 + jobs_ec2.EXPIRY_MARGIN_S


def test_record_keeps_no_paths_or_secrets() -> None:
    stored = {"region": "us-east-1", "owner": "me@h", "ssh_via": "tag", "user": "root",
              "user_data": "/home/me/init.sh", "ssh_cidrs": ["10.0.0.0/8"], "image": "ami-0123456789abcdef0"}
    assert jobs_ec2.record(stored) == {"region": "us-east-1", "owner": "me@h", "ssh_via": "tag", "user": "root"}


def test_node_key_prefers_the_instance_id() -> None:
    a = Node(index=0, name="arr-0", address="", private_ip="", instance_id="i-1")
    b = Node(index=0, name="arr-0", address="", private_ip="")
    assert jobs_ec2.node_key(a) == "i-1" and jobs_ec2.node_key(b) == "arr-0"


class FakeEc2:
    """Records each prepare's overrides and each create's count; hands out nodes with instance ids."""

    name = "ec2"

    def __init__(self) -> None:
        self.runs: list[tuple[dict[str, Any], int]] = []
        self._pending: dict[str, Any] | None = None
        self.next = 0

    def prepare(self, stored: dict[str, Any], overrides: dict[str, Any], creating: bool) -> dict[str, Any]:
        assert not creating
        self._pending = overrides
        return stored

    def create(self, _state: Any, count: int, _say: Any, role: str | None = None) -> list[Node]:
        assert self._pending is not None and role == "worker"
        self.runs.append((self._pending, count))
        out = []
        for _ in range(count):
            out.append(Node(index=self.next, name=f"arr-{self.next}", address="", private_ip="",
                            instance_id=f"i-{self.next}", details={"type": self._pending["instance_type"]}))
            self.next += 1
        self._pending = None
        return out


def test_one_launch_per_type_and_lifetime_in_row_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arr = JobArray("arr", tmp_path)
    monkeypatch.setattr(type(arr.state), "load",
                        lambda _self: type("R", (), {"settings": {"region": "us-east-1"}, "provider": "ec2"})())
    monkeypatch.setattr("vcloud_ansible.jobs.array.Configurable", FakeEc2)
    rows = [JobRow(name=n, index=i, line=i + 2, instance_type=t, command="true", timeout=to)
            for i, (n, t, to) in enumerate([("a", "t3.micro", 600), ("b", "c5.large", None),
                                            ("c", "t3.micro", 600), ("d", "t3.micro", 60)])]
    prov = FakeEc2()
    nodes = arr._create(prov, rows, 86400, lambda _m: None)  # type: ignore[arg-type]
    assert [n.details["type"] for n in nodes] == ["t3.micro", "c5.large", "t3.micro", "t3.micro"]
    assert [(o["instance_type"], o["lifetime"], count) for o, count in prov.runs] == [
        ("t3.micro", f"{600 + jobs_ec2.EXPIRY_MARGIN_S}s", 2), ("c5.large", "86400s", 1),
        ("t3.micro", f"{60 + jobs_ec2.EXPIRY_MARGIN_S}s", 1)]
    assert all(o["shutdown_behavior"] == "terminate" and o["role"] == "worker" for o, _ in prov.runs)


def test_created_at_from_the_lab_or_the_launch_time() -> None:
    lab = Node(index=0, name="a-0", address="", private_ip="", details={"created": 12.5})
    inst = Node(index=0, name="a-0", address="", private_ip="", details={"launched": "2026-12-01T05:00:00Z"})
    neither = Node(index=0, name="a-0", address="", private_ip="", details={"launched": ""})
    assert jobs_ec2.created_at(lab) == 12.5
    assert jobs_ec2.created_at(inst) == 1796101200.0
    assert jobs_ec2.created_at(neither) is None


class Groups:
    def __init__(self, perms: list[dict[str, Any]]) -> None:
        self.perms = perms

    def describe_security_groups(self, GroupIds: list[str]) -> dict[str, Any]:
        return {"SecurityGroups": [{"GroupId": GroupIds[0], "IpPermissions": self.perms}]}


def test_a_given_group_open_to_the_world_is_refused() -> None:
    closed = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.0/24"}]},
              {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-1"}]}]
    jobs_ec2.check_group(Groups(closed), "sg-1")
    with pytest.raises(UsageError, match=r"sg-1 is open to 0.0.0.0/0 \(port 22\)"):
        jobs_ec2.check_group(Groups([*closed, {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                               "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]), "sg-1")
    with pytest.raises(UsageError, match=r"open to ::/0 \(all ports\)"):
        jobs_ec2.check_group(Groups([{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]), "sg-1")
