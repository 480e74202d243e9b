"""`vca heal` on ec2: which nodes are gone, what vca remembers of them, and the replacement (launched as
the node was made, all or none), against a fake EC2 in which the provision and teardown playbooks act."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from vcloud_ansible import paths
from vcloud_ansible.errors import ProviderError, RemoteFailed
from vcloud_ansible.node import Node
from vcloud_ansible.providers.ec2 import members as mem
from vcloud_ansible.providers.ec2 import provider as ec2
from vcloud_ansible.providers.ec2.api import Instance, Plan
from vcloud_ansible.remote import access
from vcloud_ansible.state import ClusterState

SETTINGS = {"region": "eu-west-1", "owner": "me@here", "instance_type": "t3.micro", "head_instance_type": "t3.small",
            "image": "ami-0123456789abcdef0", "ssh_via": "tag", "ssh_cidrs": ["10.0.0.0/24"], "user": "root",
            "lifetime": "24h", "ssh_timeout": 10, "tags": {"team": "x"}}


def inst(index: int | None, iid: str, state: str = "running", role: str = "worker", spot: bool = False,
         itype: str = "t3.micro", expires: str = "2030-01-01T00:00:00Z") -> Instance:
    tags = {"vca:cluster": "demo", "vca:owner": "me@here", "vca:role": role, "vca:expires-at": expires,
            "vca:ssh_host": f"10.0.0.{len(iid)}", **({"vca:index": str(index)} if index is not None else {})}
    return Instance(id=iid, state=state, tags=tags, private_ip=f"172.31.0.{index}", instance_type=itype,
                    lifecycle="spot" if spot else "on-demand")


def test_gone_is_decided_in_one_place() -> None:
    assert mem.gone_state(None) == "terminated"  # no longer in the account
    for state in ("terminated", "shutting-down"):
        assert mem.gone_state(inst(1, "i-1", state)) == "terminated"
    for state in ("pending", "running", "stopping", "stopped"):
        assert mem.gone_state(inst(1, "i-1", state)) is None  # a stopped node is not gone


def test_the_record_keeps_gone_nodes_and_follows_live_ones(tmp_path: Path) -> None:
    state = ClusterState("demo", tmp_path)
    state.create("ec2", dict(SETTINGS))
    record = mem.Members(state)
    record.remember([inst(0, "i-a", role="head", itype="t3.small"), inst(1, "i-b"), inst(2, "i-c", spot=True),
                     inst(None, "i-orphan")], {"i-c": "0.05"})
    got = record.load()
    assert sorted(got) == [0, 1, 2]
    assert (got[0].role, got[0].instance_type, got[0].spot) == ("head", "t3.small", False)
    assert (got[2].spot, got[2].max_price, got[2].expires) == (True, "0.05", "2030-01-01T00:00:00Z")
    # Node 2 vanishes from EC2, node 1 is stopped: only 2 is gone; a later write keeps its entry.
    live = [inst(0, "i-a", role="head"), inst(1, "i-b", state="stopped")]
    assert [m.index for m in mem.gone_members(got, live)] == [2]
    record.remember(live)
    assert record.load()[2] == got[2]
    assert [m.index for m in mem.gone_members(record.load(), [*live, inst(2, "i-c", "terminated")])] == [2]
    # A new instance under the index (a heal) takes it over, role and market kept.
    after = mem.healed(record.load(), [inst(2, "i-new", spot=True)])
    assert (after[2].instance, after[2].spot, after[2].max_price) == ("i-new", True, "0.05")
    record.forget([2])
    assert sorted(record.load()) == [0, 1]
    record.forget(None)
    assert record.load() == {} and not record.path.exists()


def test_heal_groups_one_launch_per_role_and_market_heads_first() -> None:
    members = {0: mem.Member(0, "head"), 2: mem.Member(2, "worker", spot=True, max_price="0.05"),
               3: mem.Member(3, "worker"), 5: mem.Member(5, "worker", spot=True, max_price="0.05")}
    gone = [Node(i, f"demo-{i}", "", "", role="dev" if i == 7 else "worker") for i in (2, 3, 5, 7, 0)]
    assert mem.heal_groups(gone, members) == [
        mem.HealGroup("head", False, None, (0,)), mem.HealGroup("worker", True, "0.05", (2, 5)),
        mem.HealGroup("worker", False, None, (3,)),
        mem.HealGroup("dev", False, None, (7,)),  # no record: on demand, with the role it was listed with
    ]


class FakeEc2World:
    """The instances of one cluster, changed by the provision and teardown playbooks as they would."""

    def __init__(self, instances: list[Instance]) -> None:
        self.instances = instances
        self.runs: list[tuple[str, dict[str, Any]]] = []
        self.fail_launch = False
        self.counter = 0

    def live(self) -> list[Instance]:
        return [i for i in self.instances if i.state in ("pending", "running", "stopping", "stopped")]

    def playbook(self, state: ClusterState, name: str, extravars: dict[str, Any], secrets: Any, what: str) -> None:
        self.runs.append((name, extravars))
        if name == "teardown":
            for i in self.live():
                if i.index in extravars["provider_ec2_indexes"]:
                    i.state = "terminated"
            return
        if self.fail_launch:
            raise RemoteFailed(f"{what} failed on 1 of 1 hosts: localhost (InsufficientInstanceCapacity)", [])
        for index in extravars["provider_ec2_indexes"]:
            self.counter += 1
            self.instances.append(inst(index, f"i-new{self.counter}", role=extravars["provider_ec2_role"],
                                       spot=extravars["provider_ec2_spot"],
                                       itype=extravars["provider_ec2_instance_type"],
                                       expires=extravars["provider_ec2_expires_at"]))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ClusterState, FakeEc2World]:
    state = ClusterState("demo", tmp_path)
    state.create("ec2", dict(SETTINGS))
    w = FakeEc2World([inst(0, "i-a", role="head", itype="t3.small"), inst(1, "i-b"),
                      inst(2, "i-c", spot=True, expires="2029-06-01T00:00:00Z")])
    mem.Members(state).remember(w.live(), {"i-c": "0.05"})
    plan = Plan(image_id="ami-0123456789abcdef0", image_name="x", root_device="/dev/xvda", vpc_id=None,
                subnet_id=None, ssh_cidrs=["10.0.0.0/24"])
    monkeypatch.setattr(ec2.ec2_api, "client", lambda region: object())
    monkeypatch.setattr(ec2.ec2_api, "cluster_instances", lambda client, cluster, region: w.live())
    monkeypatch.setattr(ec2.ec2_api, "preflight", lambda client, s: plan)
    monkeypatch.setattr(ec2.ec2_api, "role_plan", lambda client, s, p: p)
    monkeypatch.setattr(ec2.Ec2Provider, "_playbook", staticmethod(w.playbook))
    real_learn = ec2.learn_host_keys
    monkeypatch.setattr(ec2, "learn_host_keys",
                        lambda *a: real_learn(*a, scan=lambda host, port: f"ssh-ed25519 K{host}"))
    return state, w


def test_terminated_nodes_are_listed_gone_and_come_back_as_they_were(world: tuple[ClusterState, FakeEc2World]) -> None:
    state, w = world
    prov = ec2.Ec2Provider()
    w.instances[0].state = "terminated"  # the head, in the console
    w.instances.remove(w.instances[2])  # the spot worker, so long ago that EC2 forgot it
    nodes = prov.nodes(state)
    assert [(n.index, n.state, n.role) for n in nodes] == [(0, "terminated", "head"), (1, "running", "worker"),
                                                           (2, "terminated", "worker")]
    assert nodes[2].address == "" and nodes[2].host_key is None and nodes[2].details["lifecycle"] == "spot"
    # An address-less node never sends ssh anywhere.
    assert "HostName demo-2.no-address.invalid" in access.render_ssh_config(state, nodes)

    seen: list[list[int]] = []
    new = prov.replace(state, [n for n in nodes if n.state == "terminated"], lambda _m: None,
                       lambda made: seen.append([n.index for n in made]))
    assert seen == [[0, 2]] and [(n.index, n.role, n.state) for n in new] == [(0, "head", "running"),
                                                                                (2, "worker", "running")]
    assert all(n.host_key and n.instance_id and n.instance_id.startswith("i-new") for n in new)
    launches = [v for name, v in w.runs if name == "provision"]
    assert [(v["provider_ec2_indexes"], v["provider_ec2_role"], v["provider_ec2_instance_type"],
             v["provider_ec2_spot"], v["provider_ec2_spot_max_price"]) for v in launches] == [
        ([0], "head", "t3.small", False, ""), ([2], "worker", "t3.micro", True, "0.05")]
    # The same expiry as before (a heal never extends a cluster's life), the cluster's own tags.
    assert [v["provider_ec2_expires_at"] for v in launches] == ["2030-01-01T00:00:00Z", "2029-06-01T00:00:00Z"]
    assert all(v["provider_ec2_tags"] == {"team": "x"} and v["provider_ec2_count"] == 1 for v in launches)
    assert [(n.index, n.state) for n in prov.nodes(state)] == [(0, "running"), (1, "running"), (2, "running")]
    record = mem.Members(state).load()
    assert record[2].instance == new[1].instance_id and record[2].spot and record[2].max_price == "0.05"


@pytest.mark.parametrize("failure", ["launch", "ready"])
def test_a_failed_replacement_leaves_nothing_and_the_nodes_gone(world: tuple[ClusterState, FakeEc2World],
                                                                failure: str) -> None:
    state, w = world
    prov = ec2.Ec2Provider()
    w.instances[1].state = "terminated"
    before = mem.Members(state).path.read_text()
    w.fail_launch = failure == "launch"

    def ready(_new: list[Node]) -> None:
        raise ProviderError("1 node did not answer SSH within 90 s: demo-1")

    said: list[str] = []
    with pytest.raises((ProviderError, RemoteFailed)):
        prov.replace(state, [n for n in prov.nodes(state) if n.state == "terminated"], said.append, ready)
    assert [name for name, _ in w.runs][-1] == "teardown" and w.runs[-1][1]["provider_ec2_indexes"] == [1]
    assert [i.index for i in w.live()] == [0, 2]  # the replacement was terminated
    assert mem.Members(state).path.read_text() == before
    assert [(n.index, n.state) for n in prov.nodes(state)][1] == (1, "terminated")  # heal can try again
    assert any("terminating the replacement instances of node 1" in m for m in said)


def test_new_nodes_do_not_take_a_gone_index(world: tuple[ClusterState, FakeEc2World]) -> None:
    state, w = world
    w.instances[1].state = "terminated"
    gone = mem.gone_members(mem.Members(state).load(), w.live())
    extra = ec2._extravars(state, ec2.Ec2Settings.from_dict(SETTINGS), Plan("ami-0123456789abcdef0", "x", None, None,
                                                                           None, ["10.0.0.0/24"]), 1, "t",
                           reserved=[m.index for m in gone])
    assert extra["provider_ec2_reserved_indexes"] == [1] and extra["provider_ec2_indexes"] == []


def _module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "vca_ec2_instances", paths.roles_dir() / "provider_ec2" / "library" / "vca_ec2_instances.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Done(Exception):
    pass


class _Module:
    check_mode = False

    def __init__(self, **params: Any) -> None:
        self.params = {"wait": False, "wait_timeout": 5, "indexes": [], "reserved": [], "launch_template_id": "lt-1",
                       "launch_template_version": "1", "client_token": None, "tags": {}, "role": None, "spot": False,
                       "spot_max_price": "", "shutdown_behavior": "stop", "cluster": "demo", **params}
        self.result: dict[str, Any] = {}

    def exit_json(self, **result: Any) -> None:
        self.result = result
        raise _Done

    def fail_json(self, msg: str, **_kw: Any) -> None:
        raise AssertionError(msg)


class _Client:
    def __init__(self, indexes: list[int]) -> None:
        self.instances = [{"InstanceId": f"i-{n}", "State": {"Name": "running"},
                           "Tags": [{"Key": "vca:cluster", "Value": "demo"}, {"Key": "vca:index", "Value": str(n)}]}
                          for n in indexes]
        self.tagged: dict[str, str] = {}

    def describe_instances(self, aws_retry: bool, **_kw: Any) -> dict[str, Any]:
        return {"Reservations": [{"Instances": self.instances}]}

    def run_instances(self, aws_retry: bool, MinCount: int, **_kw: Any) -> dict[str, Any]:
        made = [{"InstanceId": f"i-new{k}", "State": {"Name": "pending"}, "Tags": []} for k in range(MinCount)]
        self.instances += made
        return {"Instances": made}

    def create_tags(self, aws_retry: bool, Resources: list[str], Tags: list[dict[str, str]]) -> None:
        self.tagged[Resources[0]] = next(t["Value"] for t in Tags if t["Key"] == "vca:index")


def test_the_module_launches_under_given_indexes_and_skips_reserved_ones() -> None:
    module = _module()
    client = _Client([0, 2, 5])
    with pytest.raises(_Done):
        module.ensure_present(_Module(count=2, indexes=[4, 1]), client)
    assert client.tagged == {"i-new0": "1", "i-new1": "4"}
    client = _Client([0, 2])
    with pytest.raises(_Done):
        module.ensure_present(_Module(count=2, reserved=[1, 3]), client)
    assert client.tagged == {"i-new0": "4", "i-new1": "5"}  # never a gone node's index
    with pytest.raises(AssertionError, match="index 2 belongs to a live node"):
        module.ensure_present(_Module(count=1, indexes=[2]), _Client([0, 2]))


def test_a_replacement_refused_by_the_checks_makes_nothing(world: tuple[ClusterState, FakeEc2World],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from vcloud_ansible.errors import UsageError

    state, w = world
    w.instances[1].state = "terminated"

    def gone_image(client: Any, s: Any) -> Plan:
        raise UsageError("AMI ami-0123456789abcdef0 not found in region eu-west-1")

    monkeypatch.setattr(ec2.ec2_api, "preflight", gone_image)
    prov = ec2.Ec2Provider()
    with pytest.raises(UsageError, match="not found"):
        prov.replace(state, [n for n in prov.nodes(state) if n.state == "terminated"], lambda _m: None)
    assert w.runs == []  # no launch, nothing to terminate


def test_an_expired_node_is_not_healed(world: tuple[ClusterState, FakeEc2World]) -> None:
    from vcloud_ansible.errors import UsageError

    state, w = world
    w.instances[1].tags["vca:expires-at"] = "2020-01-01T00:00:00Z"
    mem.Members(state).remember(w.live())
    w.instances[1].state = "terminated"
    prov = ec2.Ec2Provider()
    with pytest.raises(UsageError, match=r"demo-1 expired \(vca:expires-at 2020-01-01T00:00:00Z\): not healed"):
        prov.replace(state, [n for n in prov.nodes(state) if n.state == "terminated"], lambda _m: None)
    assert w.runs == []
