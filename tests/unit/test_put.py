"""vca put's checks and packing (pure: no node)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.put.run import _pack, check_remote


@pytest.mark.parametrize("remote", ["vca/releases/x", "~/vca", "~/vca/current/data", "./vca/jobs", "~/./vca/"])
def test_inside_vca_is_refused(remote: str) -> None:
    with pytest.raises(UsageError, match="inside ~/vca"):
        check_remote(remote)


@pytest.mark.parametrize("remote", ["data/", "~/vcadata", "/srv/vca/x", "~/data/vca/x", "/tmp/f"])
def test_other_places_are_fine(remote: str) -> None:
    assert check_remote(remote) == remote


@pytest.mark.parametrize(("remote", "message"), [("", "REMOTE is empty"), ("a\nb", "line break")])
def test_bad_remote(remote: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_remote(remote)


def test_pack_a_folder_and_a_file(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    path, sha, size, files, kind = _pack(src, tmp_path, compress=True)
    assert (files, kind, size) == (2, "dir", path.stat().st_size) and len(sha) == 64
    with tarfile.open(path) as tar:
        assert sorted(tar.getnames()) == ["p", "p/a.txt", "p/sub", "p/sub/b.txt"]
    path, _, _, files, kind = _pack(src / "a.txt", tmp_path, compress=False)
    with tarfile.open(path) as tar:
        assert (tar.getnames(), files, kind) == (["p"], 1, "file")
