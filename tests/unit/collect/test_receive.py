"""What the controller does with a node's answer: safe unpacking of hostile archives and listings,
the overwrite rule, node folders that are links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from collect_fixtures import finish, probe, tarball

from vcloud_ansible.collect.layout import Layout
from vcloud_ansible.errors import UsageError


def test_node_folder_link_refused_before_and_during(tmp_path: Path) -> None:
    layout = Layout.make(tmp_path / "local")
    layout.prepare()
    (tmp_path / "elsewhere").mkdir()
    (layout.local / "c-3").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="c-3 is a link"):
        layout.refuse_links([("c-2", 2), ("c-3", 3)])
    files = {"/h/rel/results/a.txt": b"alpha\n"}
    archive = tarball(tmp_path / "a.tar", [(k.lstrip("/"), v, "") for k, v in files.items()])
    o, _ = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and "is a link" in o.message()
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_unpack_good_archive(tmp_path: Path) -> None:
    files = {"/h/rel/results/a.txt": b"alpha\n", "/h/rel/results/sub/b.bin": b"\0\1\2"}
    archive = tarball(tmp_path / "a.tar", [(k.lstrip("/"), v, "") for k, v in files.items()])
    o, root = finish(tmp_path, probe("/h/rel", files), archive)
    assert o.ok and o.new == 2 and o.files == 2
    assert (root / "results" / "a.txt").read_bytes() == b"alpha\n"
    assert os.access(root / "results" / "a.txt", os.X_OK)  # the mode travels (without special bits)
    entries = {e["local_path"]: e for e in o.entries}
    assert entries["c-3/results/sub/b.bin"] == {**entries["c-3/results/sub/b.bin"], "node": "c-3",
                                                 "node_index": 3, "instance_id": "i-0abc", "size": 3,
                                                 "remote_path": "/h/rel/results/sub/b.bin"}


@pytest.mark.parametrize(("member", "data", "link", "words"), [
    ("../../escape.txt", b"x", "", "contains '..'"),
    ("/tmp/escape.txt", b"x", "", "did not list"),
    ("h/rel/results/link", None, "/etc", "not a regular file"),
    ("h/rel/results/fifo", None, "fifo", "not a regular file"),
    ("h/rel/results/a.txt", b"tampered", "", "checksum mismatch"),
])
def test_unpack_refuses_hostile_members(tmp_path: Path, member: str, data: bytes | None, link: str,
                                        words: str) -> None:
    files = {"/h/rel/results/a.txt": b"alpha\n"}
    archive = tarball(tmp_path / "a.tar", [(member, data, link), ("h/rel/results/a.txt", b"alpha\n", "")]
                      if not member.endswith("a.txt") else [(member, data, link)])
    before = set(tmp_path.rglob("*"))
    o, root = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and words in o.message()
    made = {p for p in set(tmp_path.rglob("*")) - before if not p.is_dir()}
    assert all(root in p.parents or p.name == "vca-manifest.json" for p in made), made
    assert not list(tmp_path.rglob("escape.txt")) and not Path("/tmp/escape.txt").exists()


@pytest.mark.parametrize("target", ["OUTSIDE", "../../../../../../../../OUTSIDE"])
def test_archive_cannot_write_through_its_own_links(tmp_path: Path, target: str) -> None:
    """The classic tar attack: a link to a folder outside, then a file "inside" the link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    link = target.replace("OUTSIDE", str(outside).lstrip("/")) if target.startswith("..") else str(outside)
    files = {"/h/rel/results/a.txt": b"alpha\n", "/h/rel/results/d/escape.txt": b"x"}
    archive = tarball(tmp_path / "a.tar", [("h/rel/results/d", None, link), ("h/rel/results/d/escape.txt", b"x", ""),
                                           ("h/rel/results/a.txt", b"alpha\n", "")])
    o, root = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and "escape.txt" in " ".join(o.errors)
    assert list(outside.iterdir()) == []
    assert (root / "results" / "a.txt").read_bytes() == b"alpha\n"  # what is sound is still collected
    assert not (root / "results" / "d").exists()


def test_hostile_listing_names_refused(tmp_path: Path) -> None:
    files = {"/h/rel/results/../../../escape.txt": b"x", "/h/rel/results/ok.txt": b"ok"}
    archive = tarball(tmp_path / "a.tar", [("h/rel/results/ok.txt", b"ok", "")])
    o, root = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and "refused remote name" in o.message()
    assert (root / "results" / "ok.txt").read_bytes() == b"ok"


def test_unpack_respects_overwrite_rule(tmp_path: Path) -> None:
    files = {"/h/rel/results/a.txt": b"alpha\n"}
    archive = tarball(tmp_path / "a.tar", [("h/rel/results/a.txt", b"alpha\n", "")])
    mine = tmp_path / "local" / "c-3" / "results" / "a.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    o, _ = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and str(mine) in o.message() and mine.read_text() == "mine"
    o, _ = finish(tmp_path, probe("/h/rel", files), archive, overwrite=True)
    assert o.ok and o.replaced == 1 and mine.read_text() == "alpha\n"
