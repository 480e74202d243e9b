"""Where files land locally: layouts, local names, the overwrite rule, folders never made through links."""

from __future__ import annotations

from pathlib import Path

import pytest
from collect_fixtures import sha, staged

from vcloud_ansible.collect.errors import Conflict, UnsafePath
from vcloud_ansible.collect.layout import Layout, local_rel, make_parents, place
from vcloud_ansible.errors import UsageError


def test_layouts(tmp_path: Path) -> None:
    folders = Layout.make(tmp_path / "res")
    assert folders.node_root("c-2", 2) == tmp_path / "res" / "c-2"
    assert folders.manifest_path == tmp_path / "res" / "vca-manifest.json"
    flat = Layout.make(tmp_path / "res" / "out", suffix=True)
    assert flat.node_root("c-2", 2) == tmp_path / "res" / "out.2"
    assert flat.manifest_path == tmp_path / "res" / "out.manifest.json"
    assert flat.base == tmp_path / "res"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        Layout.make(tmp_path / "file").check()


def test_local_rel() -> None:
    assert local_rel("/r/rel/results/a/b.txt", "/r/rel", False) == "results/a/b.txt"
    assert local_rel("/r/rel/out.txt", "/r/rel/out.txt", True) == ""
    for bad in ("/r/rel/../x", "/r/rel/a/../../x", "/r/rel//x", "/r/other/x", "/r/relx", "/r/rel/./x"):
        with pytest.raises(UnsafePath):
            local_rel(bad, "/r/rel", False)
    with pytest.raises(UnsafePath):
        local_rel("/r/rel", "/r/rel", False)


def test_place_overwrite_rule(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    dest = tmp_path / "out.txt"
    assert place(staged(stage, b"one"), str(dest), sha(b"one"), 3, False) == "new"
    assert place(staged(stage, b"one"), str(dest), sha(b"one"), 3, False) == "same"
    with pytest.raises(Conflict, match="exists with other content"):
        place(staged(stage, b"two"), str(dest), sha(b"two"), 3, False)
    assert dest.read_bytes() == b"one"
    assert place(staged(stage, b"two"), str(dest), sha(b"two"), 3, True) == "replaced"
    assert dest.read_bytes() == b"two"
    (tmp_path / "adir").mkdir()
    with pytest.raises(Conflict, match="is a folder"):
        place(staged(stage, b"x"), str(tmp_path / "adir"), sha(b"x"), 1, True)


def test_make_parents_refuses_links_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(UnsafePath):
        make_parents(str(root / "out" / "sub"), str(root))
    (root / "file").write_text("x")
    with pytest.raises(Conflict):
        make_parents(str(root / "file" / "sub"), str(root))
    make_parents(str(root / "a" / "b"), str(root))
    assert (root / "a" / "b").is_dir()
    # The node's folder itself a link (LOCAL/<cluster>-<i> -> elsewhere): refused, nothing made there.
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePath, match="is a link"):
        make_parents(str(linked / "sub"), str(linked))
    assert list((tmp_path / "elsewhere").iterdir()) == []
    with pytest.raises(UnsafePath, match="not below"):
        make_parents(str(tmp_path), str(root))
