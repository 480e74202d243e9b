"""Provider ec2 without AWS: the inventory file, the playbook's variables, user-data, the launch
request's idempotency token, and the role's documentation against what vca passes."""

from __future__ import annotations

import email
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from vcloud_ansible import paths
from vcloud_ansible.providers.ec2 import provider as ec2
from vcloud_ansible.providers.ec2.api import Plan
from vcloud_ansible.providers.ec2.settings import Ec2Settings
from vcloud_ansible.state import ClusterState

ROLE = paths.roles_dir() / "provider_ec2"


@pytest.fixture
def state(tmp_path: Path) -> ClusterState:
    s = ClusterState("demo", tmp_path / "home")
    s.create("ec2", {"region": "eu-west-1", "owner": "me@here"})
    return s


def settings(**kw: Any) -> Ec2Settings:
    return Ec2Settings.from_dict({"region": "eu-west-1", "owner": "me@here", **kw})


@pytest.mark.parametrize(("via", "host"), [("public", "public_ip_address"), ("private", "private_ip_address"),
                                           ("tag", "no-vca-ssh-host-tag.invalid")])
def test_inventory_file(state: ClusterState, via: str, host: str) -> None:
    path = state.dir / ec2.INVENTORY_NAME
    assert path.name.endswith("aws_ec2.yml")  # the plugin reads no other file names
    doc = yaml.safe_load(ec2.render_inventory(state, settings(ssh_via=via, user="admin"), path))
    assert doc["plugin"] == "amazon.aws.aws_ec2" and doc["regions"] == ["eu-west-1"]
    assert doc["filters"]["tag:vca:cluster"] == "demo" and doc["filters"]["tag-key"] == "vca:index"
    assert doc["filters"]["instance-state-name"] == ["pending", "running"]
    assert doc["strict"] is True and doc["hostnames"] == ["tag:Name"]
    compose = doc["compose"]
    assert compose["vca_node_index"] == "tags['vca:index'] | int"
    assert compose["ansible_host"].startswith("tags.get('vca:ssh_host') or") and host in compose["ansible_host"]
    assert compose["ansible_user"] == "'admin'"
    assert compose["ansible_ssh_private_key_file"] == f"'{state.key_path}'"
    assert f"UserKnownHostsFile={state.known_hosts}" in compose["ansible_ssh_common_args"]
    assert doc["groups"] == {"head": "tags['vca:role'] == 'head'", "workers": "tags['vca:role'] == 'worker'",
                             "dev": "tags['vca:role'] == 'dev'"}


def test_playbook_variables_are_all_documented_by_the_role(state: ClusterState) -> None:
    plan = Plan(image_id="ami-0123456789abcdef0", image_name="x", root_device="/dev/sda1", vpc_id=None,
                subnet_id=None, ssh_cidrs=["203.0.113.7/32"])
    s = settings(open_ports=["8000-8100", "53/udp"], tags={"team": "x"}, lifetime="0")
    extra = ec2._extravars(state, s, plan, 3, "vca-token")
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    main = specs["main"]["options"]
    assert set(extra) | {"provider_ec2_user_data"} <= set(main)
    assert extra["provider_ec2_open_ports"] == [{"from_port": 8000, "to_port": 8100, "proto": "tcp"},
                                                {"from_port": 53, "to_port": 53, "proto": "udp"}]
    assert extra["provider_ec2_expires_at"] == "never" and extra["provider_ec2_root_device_name"] == "/dev/sda1"
    # Every public variable has a default, and every default is validated by an entry point.
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    documented = set(main) | set(specs["teardown"]["options"])
    assert set(defaults) == documented
    assert all(k.startswith("provider_ec2_") for k in defaults)


def test_user_data(state: ClusterState, tmp_path: Path) -> None:
    script = tmp_path / "init.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    assert ec2.user_data(state, settings()) == ""
    assert ec2.user_data(state, settings(user_data=str(script))) == script.read_text()
    # An existing key pair: the cluster's key is authorized through cloud-init all the same.
    config = ec2.user_data(state, settings(key_name="corp"))
    assert config.startswith("#cloud-config\n") and state.public_key() in config
    both = email.message_from_string(ec2.user_data(state, settings(key_name="corp", user_data=str(script))))
    assert [p.get_content_type() for p in both.get_payload()] == ["text/cloud-config", "text/x-shellscript"]


def test_a_retried_request_sends_the_same_token(state: ClusterState) -> None:
    first = ec2._request_token(state, 3)
    assert len(first) <= 64 and first == ec2._request_token(state, 3)
    assert ec2._request_token(state, 4) != first  # another request
    ec2._clear_request(state)
    assert ec2._request_token(state, 4) not in (first,)


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROLE / "library" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_module_helpers() -> None:
    instances = _module("vca_ec2_instances")
    gen = instances.free_indexes({0, 1, 3})
    assert [next(gen) for _ in range(3)] == [2, 4, 5]
    specs = instances.tag_specifications({"vca:cluster": "demo"})
    assert [s["ResourceType"] for s in specs] == ["instance", "volume"]
    template = _module("vca_ec2_launch_template")
    stored = {"ImageId": "ami-1", "MetadataOptions": {"HttpTokens": "required", "HttpProtocolIpv6": "disabled"},
              "TagSpecifications": [{"ResourceType": "launch-template"}]}
    assert template.covers(stored, {"ImageId": "ami-1", "MetadataOptions": {"HttpTokens": "required"}})
    assert not template.covers(stored, {"ImageId": "ami-2"})
    assert not template.covers(stored, {"BlockDeviceMappings": [{"DeviceName": "/dev/xvda"}]})


class _Exit(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("exit")
        self.result = result


class _FakeModule:
    check_mode = False

    def __init__(self, **params: Any) -> None:
        self.params = {"wait": False, "wait_timeout": 5, "indexes": [], **params}

    def exit_json(self, **result: Any) -> None:
        raise _Exit(result)

    def fail_json(self, **result: Any) -> None:
        raise AssertionError(result)


class _FakeEc2:
    """Enough of EC2 for the instances module: paged describes and recorded terminations."""

    def __init__(self, count: int) -> None:
        self.instances = [{"InstanceId": f"i-{n:05d}", "State": {"Name": "running"},
                           "Tags": [{"Key": "vca:cluster", "Value": "big"}, {"Key": "vca:index", "Value": str(n)}]}
                          for n in range(count)]
        self.terminate_calls: list[int] = []

    def describe_instances(self, aws_retry: bool, Filters: Any, MaxResults: int,
                           NextToken: str | None = None) -> dict[str, Any]:
        start = int(NextToken or 0)
        page = self.instances[start:start + MaxResults]
        more = start + MaxResults < len(self.instances)
        return {"Reservations": [{"Instances": page}], **({"NextToken": str(start + MaxResults)} if more else {})}

    def terminate_instances(self, aws_retry: bool, InstanceIds: list[str]) -> None:
        assert len(InstanceIds) <= 1000
        self.terminate_calls.append(len(InstanceIds))


def test_teardown_terminates_at_most_1000_instances_per_call() -> None:
    instances = _module("vca_ec2_instances")
    client = _FakeEc2(2500)
    with pytest.raises(_Exit) as done:
        instances.ensure_absent(_FakeModule(cluster="big", state="absent"), client)
    assert client.terminate_calls == [1000, 1000, 500]
    assert len(done.value.result["terminated_ids"]) == 2500
    client = _FakeEc2(10)
    with pytest.raises(_Exit):
        instances.ensure_absent(_FakeModule(cluster="big", state="absent", indexes=[3, 7]), client)
    assert client.terminate_calls == [2]  # only the nodes asked for


def test_expiry_tag_and_warning() -> None:
    from vcloud_ansible.cluster import expiry_warning
    from vcloud_ansible.node import Node

    at = ec2.parse_expiry("2026-01-02T03:04:05Z")
    assert at == 1767323045.0
    assert ec2.parse_expiry("never") is None and ec2.parse_expiry(None) is None
    assert ec2.parse_expiry("tomorrow") is None  # a tag vca did not write never counts as expired
    nodes = [Node(0, "c-0", "h", "p", expires_at=at), Node(1, "c-1", "h", "p", expires_at=at + 600),
             Node(2, "c-2", "h", "p")]
    assert [n.expired(at + 60) for n in nodes] == [True, False, False]
    assert expiry_warning("c", nodes, at - 1) is None
    assert expiry_warning("c", nodes, at + 3600) == (
        "2 of 3 nodes of cluster 'c' expired (the first 1h00m ago) and still run: "
        "`vca -c c teardown` removes them")


@pytest.mark.parametrize("value", ["notaurl", "ftp://ec2.example.com", "http://", "http://:5000",
                                   "http://127.0.0.1:99999", "127.0.0.1:5000"])
def test_an_endpoint_that_is_not_a_url_is_one_line(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from vcloud_ansible.errors import UsageError
    from vcloud_ansible.providers.ec2 import api as ec2_api

    monkeypatch.delenv("AWS_ENDPOINT_URL_EC2", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", value)
    with pytest.raises(UsageError, match=f"the EC2 endpoint '{value}' is not a URL"):
        ec2_api.client("eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    from vcloud_ansible.remote import aws

    assert aws.configured_endpoint() == "http://127.0.0.1:5000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", value)
    with pytest.raises(UsageError, match=f"the S3 endpoint '{value}' is not a URL"):
        aws.configured_endpoint("s3")


def test_aws_clients_are_bounded() -> None:
    from vcloud_ansible.remote import aws

    cfg = aws.client_config()
    assert cfg.connect_timeout <= 5 and cfg.read_timeout <= 10
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 3}
