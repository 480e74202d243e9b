"""Static hosts as text and mappings, defaults, duplicates, heads; capability selection."""

from __future__ import annotations

import pytest

from vcloud_ansible.errors import NodeNotFound, UsageError
from vcloud_ansible.node import Node, NodeRefs, with_capabilities
from vcloud_ansible.providers.static import HostSpec, merge_hosts, parse_host, parse_hosts


@pytest.mark.parametrize(("text", "want"), [
    ("10.0.0.5", HostSpec("10.0.0.5")),
    ("ops@node-1.example:2222", HostSpec("node-1.example", user="ops", port=2222)),
    ("[fd00::5]:2200", HostSpec("fd00::5", port=2200)),
    ("fd00::5", HostSpec("fd00::5")),
    ('{"host": "h1", "capabilities": "redis, gpu", "role": "head", "scratch": "/mnt/s"}',
     HostSpec("h1", capabilities=("redis", "gpu"), role="head", scratch="/mnt/s")),
])
def test_host_forms(text: str, want: HostSpec) -> None:
    assert parse_host(text) == want


def test_defaults_fill_gaps_only() -> None:
    defaults = {"user": "admin", "port": 2200, "identity": "/k"}
    assert parse_host("h", defaults) == HostSpec("h", user="admin", port=2200, identity="/k")
    assert parse_host("root@h:22", defaults) == HostSpec("h", user="root", port=22, identity="/k")


@pytest.mark.parametrize(("value", "words"), [
    ("ops@", "is not a host name or address"),
    ("h:99999", "invalid port '99999'"),
    ("h:ssh", "invalid port 'ssh'"),
    ("Bad User@h", "invalid user name"),
    ("1.2.3", "is not a host name or address"),
    ('{"host": "h",', "is not valid JSON"),
    ('{"host": "h", "colour": "red"}', "unknown key colour"),
    ('{"user": "ops"}', 'has no "host"'),
    ('{"host": "h", "capabilities": ["re dis"]}', "capabilities must be a list of names"),
    ('{"host": "h", "role": "boss"}', "unknown node role 'boss'"),
    ('{"host": "h", "work": "rel/path"}', "work must be an absolute path"),
    (["h"], "must be text or a mapping"),
])
def test_bad_hosts(value: object, words: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_host(value)
    assert words in exc.value.one_line()


def test_duplicates_and_heads_refused() -> None:
    with pytest.raises(UsageError, match="duplicate static host H:22"):
        parse_hosts(["h", "root@H:22"])
    assert len(parse_hosts(["h", "h:2222"])) == 2  # one address, two sshd ports: two hosts
    with pytest.raises(UsageError, match="2 heads"):
        parse_hosts([{"host": "a", "role": "head"}, {"host": "b", "role": "head"}])


def test_merge_keeps_stored_and_refuses_changed_settings() -> None:
    stored = {"user": "root", "hosts": [HostSpec("a").to_json()]}
    assert [h.host for h in merge_hosts(stored, {"hosts": ["a", "b"]})] == ["a", "b"]
    with pytest.raises(UsageError, match="already, with other settings"):
        merge_hosts(stored, {"hosts": ["ops@a"]})


def _n(i: int, caps: tuple[str, ...]) -> Node:
    return Node(i, f"c-{i}", f"10.0.0.{i}", f"10.0.0.{i}", capabilities=caps)


def test_where_selects_by_capability() -> None:
    nodes = [_n(0, ("redis",)), _n(1, ()), _n(2, ("redis", "gpu"))]
    assert [n.index for n in with_capabilities("c", ("redis",), nodes, nodes)] == [0, 2]
    assert [n.index for n in with_capabilities("c", ("redis", "gpu"), nodes, nodes)] == [2]
    with pytest.raises(NodeNotFound) as exc:
        with_capabilities("c", ("tpu",), nodes, nodes)
    assert exc.value.one_line() == "cluster 'c' has no node with capability tpu: capabilities of its nodes: gpu, redis"
    refs = NodeRefs([(0, 1)], [], ["redis"])
    assert refs and refs.named() == NodeRefs([(0, 1)]) and str(refs) == "0-1 where redis"
    assert NodeRefs(where=["gpu"])
