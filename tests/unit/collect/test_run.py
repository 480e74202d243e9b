"""The steps of one collect (vcloud_ansible.collect.run): input checks before any node is asked, the
``--retry-failed`` choice, failures recorded for it, the typed result and its one-line failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from collect_fixtures import NODE, local_shell

from vcloud_ansible.collect.layout import Layout
from vcloud_ansible.collect.manifest import Manifest, record
from vcloud_ansible.collect.outcome import NodeInfo, NodeOutcome
from vcloud_ansible.collect.run import (
    CollectResult,
    Request,
    collect_nodes,
    collect_one,
    default_local,
    failed_last_time,
    inventory_node,
)
from vcloud_ansible.errors import RemoteFailed, UsageError
from vcloud_ansible.node import Node
from vcloud_ansible.state import ClusterState


def home_with(tmp_path: Path, files: dict[str, str]) -> Path:
    home = tmp_path / "home"
    rel = home / "vca" / "releases" / "r1"
    for name, text in files.items():
        (rel / name).parent.mkdir(parents=True, exist_ok=True)
        (rel / name).write_text(text)
    (home / "vca" / "current").symlink_to("releases/r1")
    return home


def test_request_checks_inputs_before_any_node(tmp_path: Path) -> None:
    r = Request.make("results/", tmp_path / "res")
    assert r.layout.local == tmp_path / "res" and r.spec.contents and r.compression == "auto"
    assert Request.make("out.txt", None, suffix=True).layout.local == Path.cwd() / "out.txt"
    assert Request.make("out.txt").layout.local == Path.cwd()
    assert default_local("logs/out.txt/", True) == "out.txt" and default_local("x", False) == "."
    for remote in ("out*", "~", "."):
        with pytest.raises(UsageError, match="--suffix needs LOCAL"):
            Request.make(remote, None, suffix=True)
    with pytest.raises(UsageError, match="compression must be one of"):
        Request.make("out.txt", tmp_path, compression="lz4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        Request.make("out.txt", tmp_path / "file")
    with pytest.raises(UsageError, match="bad REMOTE"):
        Request.make("", tmp_path)


def test_inventory_node() -> None:
    assert inventory_node("h", "demo", "4", "i-1") == NodeInfo("demo-4", 4, "i-1")
    assert inventory_node("h", None, 4) == NodeInfo("h", 4, None)
    assert inventory_node("h", "demo", None, "") == NodeInfo("h", None, None)


def test_collect_one_collects_skips_and_records_failures(tmp_path: Path) -> None:
    home = home_with(tmp_path, {"out.txt": "out\n"})
    local = tmp_path / "res"

    def fetch(remote: str, dest: Path) -> None:
        dest.write_bytes(Path(remote).read_bytes())

    o = collect_one(NODE, "out.txt", local, shell=local_shell(home), fetch=fetch)
    assert o is not None and o.ok and o.new == 1 and (local / "c-3" / "out.txt").read_text() == "out\n"
    # --retry-failed: a node that did not fail last time is not asked
    assert collect_one(NODE, "out.txt", local, shell=local_shell(home), fetch=fetch, retry_failed=True) is None

    def lost(cmd: str, stdin: str | None) -> tuple[int, str, str]:
        raise ConnectionError("connection lost")

    with pytest.raises(ConnectionError):
        collect_one(NODE, "out.txt", local, shell=lost, fetch=fetch)
    failed = Manifest.load(local / "vca-manifest.json").failed_nodes
    assert failed["c-3"]["error"] == "connection lost" and failed["c-3"]["remote"] == "out.txt"
    # now it failed last time: --retry-failed asks it again, and its success clears the failure
    o = collect_one(NODE, "out.txt", local, shell=local_shell(home), fetch=fetch, retry_failed=True)
    assert o is not None and o.ok and o.same == 0 and o.kept == 1
    assert Manifest.load(local / "vca-manifest.json").failed_nodes == {}


def test_collect_nodes_retry_failed_and_no_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = ClusterState("demo", tmp_path / "vca")
    nodes = [Node(i, f"demo-{i}", f"10.0.0.{i + 1}", f"10.0.0.{i + 1}") for i in range(3)]
    request = Request.make("out.txt", tmp_path / "res")
    with pytest.raises(UsageError, match="cluster 'demo' has no nodes"):
        collect_nodes(state, [], request)
    with pytest.raises(UsageError, match="no manifest at"):
        collect_nodes(state, nodes, request, retry_failed=True)
    record(request.layout, "out.txt", [], {"demo-2": {"node_index": 2, "remote": "out.txt", "error": "down"}})
    assert [n.name for n in failed_last_time(request.layout, nodes)] == ["demo-2"]
    asked: list[Any] = []

    def fake(state: ClusterState, targets: list[Node], *args: Any, **kw: Any) -> list[NodeOutcome]:
        asked.extend(n.name for n in targets)
        return [NodeOutcome(NodeInfo(n.name, n.index)) for n in targets]

    import vcloud_ansible.collect.transport as transport

    monkeypatch.setattr(transport, "collect_from_nodes", fake)
    started: list[int] = []
    res = collect_nodes(state, nodes, request, retry_failed=True, on_start=started.append)
    assert asked == ["demo-2"] and started == [1] and res.ok and not res.nothing_to_retry
    record(request.layout, "out.txt", [], {}, ["demo-2"])
    res = collect_nodes(state, nodes, request, retry_failed=True, on_start=started.append)
    assert res.nothing_to_retry and res.outcomes == [] and started == [1]
    # a node folder that is a link is refused before any node is asked
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "res" / "demo-1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="demo-1 is a link"):
        collect_nodes(state, nodes, request)
    assert asked == ["demo-2"]


def test_collect_result_counts_and_failure_line(tmp_path: Path) -> None:
    layout = Layout.make(tmp_path / "res")
    ok = NodeOutcome(NodeInfo("c-0", 0), new=2, kept=1, bytes=10, links_skipped=["/x"])
    bad = [NodeOutcome(NodeInfo(f"c-{i}", i), new=5, bytes=7, errors=[f"down {i}"]) for i in range(1, 8)]
    res = CollectResult(layout, [ok, *bad])
    assert (res.files, res.bytes, res.links_skipped, res.ok) == (3, 10 + 7 * 7, 1, False)
    assert res.manifest_path == tmp_path / "res" / "vca-manifest.json" and res.local == tmp_path / "res"
    with pytest.raises(RemoteFailed) as info:
        res.raise_for_failures()
    assert info.value.message == ("collect failed on 7 of 8 nodes: c-1 (down 1), c-2 (down 2), c-3 (down 3), "
                                  "c-4 (down 4), c-5 (down 5), and 2 more")
    assert "--retry-failed" in (info.value.hint or "")
    CollectResult(layout, [ok]).raise_for_failures()
    assert json.dumps(ok.report())  # what the Ansible action hands back is JSON
