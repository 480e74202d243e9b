"""--package: the artifacts plus the launch script as an executable vcloud-launch, never half-written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vcloud_ansible.compile import artifacts
from vcloud_ansible.compile.artifacts import Artifact
from vcloud_ansible.errors import UsageError


def _inputs(tmp_path: Path) -> tuple[Path, Path, list[Artifact]]:
    built = tmp_path / "built"
    (built / "lib").mkdir(parents=True)
    (built / "hello").write_bytes(b"\x7fELF")
    os.chmod(built / "hello", 0o755)
    (built / "lib" / "x.so").write_bytes(b"so")
    launch = tmp_path / "launch"
    launch.write_text("#!/bin/sh\nexec ./hello\n")
    os.chmod(launch, 0o644)  # made executable in the package
    return built, launch, [Artifact("hello", "/b/hello", 4, ""), Artifact("lib/x.so", "/b/lib/x.so", 2, "")]


def test_package_written_whole(tmp_path: Path) -> None:
    built, launch, arts = _inputs(tmp_path)
    pkg = tmp_path / "deploy"
    artifacts.write_package(pkg, launch, built, arts, force=False)
    assert sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*") if p.is_file()) == [
        "hello", "lib/x.so", "vcloud-launch"]
    assert os.access(pkg / "vcloud-launch", os.X_OK) and os.access(pkg / "hello", os.X_OK)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_package_refuses_a_full_folder_unless_forced(tmp_path: Path) -> None:
    built, launch, arts = _inputs(tmp_path)
    pkg = tmp_path / "deploy"
    pkg.mkdir()
    (pkg / "old").write_text("old")
    with pytest.raises(UsageError, match="is not empty"):
        artifacts.write_package(pkg, launch, built, arts, force=False)
    assert [p.name for p in pkg.iterdir()] == ["old"]
    artifacts.write_package(pkg, launch, built, arts, force=True)
    assert sorted(p.name for p in pkg.iterdir()) == ["hello", "lib", "vcloud-launch"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failed_package_leaves_nothing(tmp_path: Path) -> None:
    built, launch, arts = _inputs(tmp_path)
    pkg = tmp_path / "deploy"
    with pytest.raises(FileNotFoundError):
        artifacts.write_package(pkg, launch, built, [*arts, Artifact("gone", "/b/gone", 1, "")], force=False)
    assert not pkg.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
