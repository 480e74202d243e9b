"""Node selection (--node), single-node arguments, cluster names, timeouts, the ssh-config help and the
exit code of machine failures: parsed and checked without a cluster."""

from __future__ import annotations

import math
import time
import tracemalloc
from pathlib import Path

import click
import pytest

from vcloud_ansible.cli.context import App, parse_indexes, single_index
from vcloud_ansible.cluster import Cluster
from vcloud_ansible.errors import NodeNotFound, UsageError
from vcloud_ansible.node import Node


def _nodes(*indexes: int) -> list[Node]:
    return [Node(index=i, name=f"c-{i}", address=f"10.0.0.{i + 2}", private_ip=f"10.0.0.{i + 2}")
            for i in indexes]


def _select(values: tuple[str, ...], nodes: list[Node]) -> list[int]:
    cluster = Cluster.__new__(Cluster)
    cluster.name = "c"
    return [n.index for n in cluster.select(parse_indexes(values) or None, nodes)]


def test_lists_and_ranges_pick_existing_nodes_in_the_order_given() -> None:
    nodes = _nodes(0, 1, 2, 3, 4, 5)
    assert _select(("1", "3,4", "5-5"), nodes) == [1, 3, 4, 5]
    assert _select(("4-5", "0-1", "1"), nodes) == [4, 5, 0, 1]
    assert _select((), nodes) == [0, 1, 2, 3, 4, 5]
    assert parse_indexes(("1", "3,4", "6-8")) == [1, 3, 4, 6, 7, 8]


@pytest.mark.parametrize("text", ["1-0", "5-2", "0,3-1"])
def test_a_reversed_range_is_refused(text: str) -> None:
    with pytest.raises(click.UsageError, match="reversed"):
        parse_indexes((text,))


def test_a_range_beyond_the_cluster_is_refused_without_building_it() -> None:
    nodes = _nodes(0, 1)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(NodeNotFound, match=r"has no node 2-999999999 \(nodes: 0-1\)"):
            _select(("0-999999999",), nodes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 1 and peak < 1_000_000  # checked against the nodes, never expanded
    with pytest.raises(NodeNotFound, match=r"has no node 5, 7-9 \(nodes: 0-1\)"):
        _select(("0", "5", "7-9"), nodes)
    with pytest.raises(click.UsageError, match="too large"):
        parse_indexes(("0-99999999999999999999999",))


def test_a_gap_inside_a_range_is_named() -> None:
    with pytest.raises(NodeNotFound, match=r"has no node 2 \(nodes: 0-1, 3\)"):
        _select(("1-3",), _nodes(0, 1, 3))


@pytest.mark.parametrize("text", ["0-1", "0,1", "1-0", "", "-1", "1-", "a b"])
def test_commands_that_take_one_node_say_so(text: str) -> None:
    with pytest.raises(click.UsageError, match="takes one node"):
        single_index(text, "logs")


def test_single_index() -> None:
    assert single_index("3", "connect") == 3
    assert single_index(" 2 ", "connect") == 2
    assert single_index("head", "connect") == "head"
    assert single_index("c-2", "connect") == "c-2"
    assert single_index("10.0.0.4", "connect") == "10.0.0.4"


def test_nodes_named_by_name_role_and_address() -> None:
    nodes = _nodes(0, 1, 2, 3)
    nodes[0].role = "head"
    nodes[3].role = "dev"
    assert _select(("c-2",), nodes) == [2]
    assert _select(("head",), nodes) == [0]
    assert _select(("workers",), nodes) == [1, 2]
    assert _select(("worker", "dev"), nodes) == [1, 2, 3]
    assert _select(("10.0.0.3", "0"), nodes) == [0, 1]  # ranges first, then references; each node once
    assert _select(("head,0,c-0",), nodes) == [0]
    with pytest.raises(NodeNotFound, match=r"has no node 'c-9' \(nodes: 0-3\)"):
        _select(("c-9",), nodes)
    with pytest.raises(NodeNotFound, match="no node with role dev"):
        _select(("dev",), nodes[:3])
    cluster = Cluster.__new__(Cluster)
    cluster.name = "c"
    cluster._reach = lambda: nodes  # type: ignore[method-assign]
    assert cluster._one("head").index == 0 and cluster._one("c-3").index == 3 and cluster._one(2).index == 2
    with pytest.raises(UsageError, match="names 2 nodes"):
        cluster._one("workers")


def test_an_empty_cluster_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VCA_CLUSTER", raising=False)
    with pytest.raises(UsageError, match="empty"):
        App(cluster_name="").cluster()
    monkeypatch.setenv("VCA_CLUSTER", "")
    with pytest.raises(UsageError, match="VCA_CLUSTER is set but empty"):
        App(cluster_name=None).cluster()
    assert App(cluster_name="x").cluster().name == "x"  # -c wins over the empty variable
    monkeypatch.setenv("VCA_CLUSTER", "y")
    assert App(cluster_name=None).cluster().name == "y"


def _run_cli(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    from vcloud_ansible.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


@pytest.mark.parametrize(("argv", "words"), [
    (("exec", "--timeout", "-5", "--", "true"), "--timeout"),
    (("exec", "--timeout", "0", "--", "true"), "--timeout"),
    (("exec", "--timeout", "nan", "--", "true"), "--timeout"),
    (("exec", "--timeout", "inf", "--", "true"), "--timeout"),
    (("wait", "--timeout", "nan"), "--timeout"),
    (("wait", "--timeout", "-1"), "--timeout"),
    (("wait", "--interval", "nan"), "--interval"),
])
def test_timeouts_are_positive_finite_seconds(argv: tuple[str, ...], words: str) -> None:
    code, err = _run_cli("-c", "nosuch", *argv)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("vca: error: ") and words in err
    assert "positive" in err


def test_seconds_type_accepts_positive_numbers() -> None:
    from vcloud_ansible.cli.context import SECONDS

    assert SECONDS.convert("2.5", None, None) == 2.5
    assert not math.isnan(SECONDS.convert("1e3", None, None))


def test_ssh_config_help_recommends_what_works() -> None:
    from vcloud_ansible.cli.nodes import ssh_config

    text = ssh_config.help or ""
    assert "<(" not in text  # OpenSSH closes inherited descriptors: process substitution cannot work
    assert "-F /dev/stdin" in text and "> " in text


def test_a_machine_failure_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README: 2 for bad input, 3 when the machine cannot do it. A home that cannot be written (a file in
    its way, read-only, full) is the machine; it used to exit 1."""
    (tmp_path / "home").write_text("not a folder")
    monkeypatch.setenv("VCA_HOME", str(tmp_path / "home" / "vca"))
    code, err = _run_cli("-c", "x", "provision", "1")
    assert err.count("\n") == 1 and err.startswith("vca: error: "), err
    assert code == 3, err
    assert (tmp_path / "home").read_text() == "not a folder"
