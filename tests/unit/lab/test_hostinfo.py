from __future__ import annotations

from pathlib import Path

import pytest

from vcloud_ansible.errors import EnvironmentProblem
from vcloud_ansible.lab import hostinfo


def test_apt_sources_deb822_and_one_line(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n"
        "deb-src http://mirror.example/debian bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "d.sources").write_text(
        "Types: deb\nURIs: http://m2.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /k\n\nTypes: deb-src\nURIs: http://m2.example/debian\n"
        "Suites: bookworm\nComponents: main\n\nTypes: deb\nURIs: http://off.example/\nSuites: x\n"
        "Components: main\nEnabled: no\n"
    )
    lines = [line for s in hostinfo.apt_sources(tmp_path) for line in s.lines()]
    assert lines == [
        "deb http://mirror.example/debian bookworm main contrib",
        "deb http://m2.example/debian bookworm main",
        "deb http://m2.example/debian bookworm-updates main",
    ]


def test_codename(tmp_path: Path) -> None:
    f = tmp_path / "os-release"
    f.write_text('NAME="Debian"\nVERSION_CODENAME=bookworm\n')
    assert hostinfo.debian_codename(f) == "bookworm"


def test_missing_tools_named_with_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostinfo.shutil, "which", lambda t: None if t == "mmdebstrap" else "/bin/" + t)
    with pytest.raises(EnvironmentProblem) as exc:
        hostinfo.require_tools()
    assert exc.value.one_line() == (
        "missing system tools: mmdebstrap: "
        "install them with: apt-get install mmdebstrap (or run `make host-deps`)"
    )


def test_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostinfo.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match="needs root"):
        hostinfo.require_root()
