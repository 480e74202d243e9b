"""`vca service` logic against a fake HA cluster (no SSH): what is refused, what is said, what is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.node import Node
from vcloud_ansible.service import ops
from vcloud_ansible.service.spec import ServiceInfo
from vcloud_ansible.setup import ha_membership as membership
from vcloud_ansible.state import ClusterState


def node(i: int, state: str = "running", role: str | None = None) -> Node:
    return Node(index=i, name=f"c-{i}", address=f"10.0.0.{i + 2}", private_ip=f"10.0.0.{i + 2}",
                role=role or ("head" if i == 0 else "worker"), state=state)


class FakeHa(ops.HaCluster):
    def __init__(self, state: ClusterState, nodes: list[Node]) -> None:
        super().__init__(state, {"all": ["ha_cluster"]}, nodes)
        self.sent: list[str] = []
        self.ids: set[str] = set()

    def run(self, command: str, timeout: float = 60.0) -> str:
        self.sent.append(command)
        return ""

    def resource_ids(self) -> set[str]:
        return self.ids

    def services(self) -> list[ServiceInfo]:
        return [ServiceInfo("web", ["x"], "c-0", "running", True, 0, None)] if self.sent else []


@pytest.fixture
def state(tmp_path: Path) -> ClusterState:
    return ClusterState("c", tmp_path)


def test_a_service_on_a_one_node_cluster_warns_that_it_cannot_fail_over(state: ClusterState) -> None:
    said: list[str] = []
    ha = FakeHa(state, [node(0)])
    info = ops.add(ha, "web", ["python3", "-m", "http.server"], say=said.append)
    assert info.node == "c-0"
    assert any("has one node" in s and "cannot fail over" in s for s in said), said


def test_refusals_send_nothing(state: ClusterState) -> None:
    ha = FakeHa(state, [node(0), node(1)])
    ha.ids = {"web"}
    with pytest.raises(UsageError, match="already has a service"):
        ops.add(ha, "web", ["true"], say=print)
    with pytest.raises(UsageError, match="has no HA node '7'"):
        ops.add(ha, "other", ["true"], node="7", say=print)
    with pytest.raises(UsageError, match="is a node's name"):
        ops.add(ha, "c-1", ["true"], say=print)
    with pytest.raises(UsageError, match="absolute"):
        ops.add(ha, "other", ["true"], cwd="srv", say=print)
    assert ha.sent == []


def test_no_ha_role_is_refused_with_the_way_to_add_it(state: ClusterState) -> None:
    with pytest.raises(UsageError, match="has no HA cluster") as refused:
        ops.HaCluster(state, {"all": ["toolchain"]}, [node(0)])
    assert "setup --add ha_cluster" in (refused.value.hint or "")


def test_membership_lists_ha_nodes_in_index_order_down_ones_included(state: ClusterState) -> None:
    setup = {"all": ["toolchain"], "worker": ["/x/roles/ha_cluster"]}
    nodes = [node(2, "down"), node(0), node(1)]
    assert membership.named(setup)
    assert [n.name for n in membership.ha_nodes(setup, nodes)] == ["c-1", "c-2"]
    assert membership.without_ha(setup) == {"all": ["toolchain"]}
    assert membership.only_ha(setup) == {"worker": ["/x/roles/ha_cluster"]}
    extra = membership.extravars(state, setup, nodes)
    assert extra["ha_cluster_nodes"] == ["c-1", "c-2"]
    assert extra["ha_cluster_secrets_dir"].endswith("/ha")


def capable(i: int, *caps: str) -> Node:
    n = node(i)
    return Node(index=n.index, name=n.name, address=n.address, private_ip=n.private_ip, role=n.role,
                state=n.state, capabilities=caps)


def test_where_bans_every_node_without_the_capability(state: ClusterState) -> None:
    ha = FakeHa(state, [capable(0), capable(1, "redis"), capable(2, "redis", "gpu")])
    ops.add(ha, "web", ["redis-server"], where=("redis",), say=print)  # the fake runs "web" once sent
    sent = "\n".join(ha.sent)
    assert "vca-web-where" in sent and 'value="c-1"' in sent and 'value="c-2"' in sent
    assert 'value="c-0"' not in sent and 'boolean-op="and"' in sent and "vca-where" in sent
    ha2 = FakeHa(state, [capable(0), capable(1, "redis")])
    with pytest.raises(UsageError, match="lacks capability redis"):
        ops.add(ha2, "cache", ["redis-server"], node="0", where=("redis",), say=print)
    with pytest.raises(Exception, match="no node with capability gpu"):
        ops.add(ha2, "cache", ["redis-server"], where=("gpu",), say=print)
    assert ha2.sent == []  # refused before anything was sent


def test_where_round_trips_through_the_cib() -> None:
    from vcloud_ansible.service import spec

    xml = spec.primitive_xml("cache", ["redis-server"], placement="any", user=None, cwd=None, failover=True,
                             where=("redis", "gpu"))
    cib = f"<cib><configuration><resources>{xml}</resources></configuration></cib>"
    mon = "<crm_mon><resources/></crm_mon>"
    [info] = spec.parse(cib, mon)
    assert info.where == ("redis", "gpu") and info.to_json()["where"] == ["redis", "gpu"]
