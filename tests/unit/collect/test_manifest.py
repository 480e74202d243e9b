"""The manifest beside the results: merging runs, failed nodes, a file that is not a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcloud_ansible.collect.layout import Layout
from vcloud_ansible.collect.manifest import Manifest, record


def test_manifest_merge_and_failures(tmp_path: Path) -> None:
    layout = Layout.make(tmp_path / "res")
    e1 = {"node": "c-0", "node_index": 0, "local_path": "c-0/a", "sha256": "1" * 64, "size": 1}
    record(layout, "a", [e1], {"c-1": {"node_index": 1, "remote": "a", "error": "down"}})
    e2 = {**e1, "local_path": "c-1/a", "node": "c-1", "node_index": 1}
    record(layout, "a", [e2, {**e1, "size": 2}], {}, ["c-1"])
    m = Manifest.load(layout.manifest_path)
    assert m.failed_nodes == {} and sorted(m.files) == ["c-0/a", "c-1/a"] and m.files["c-0/a"]["size"] == 2
    doc = json.loads(layout.manifest_path.read_text())
    assert doc["format"] == "vca-collect-manifest/1" and doc["sources"] == ["a"] and len(doc["files"]) == 2
    layout.manifest_path.write_text("{}")
    with pytest.raises(Exception, match="not a vca collect manifest"):
        Manifest.load(layout.manifest_path)
