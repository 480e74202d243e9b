"""Bad input gets one clear line, a non-zero exit code, and changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import vca

from vcloud_ansible.lab.registry import Registry


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("vca: error: "), res.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "words"), [
    (["provision", "0"], "at least 1, got 0"),
    (["provision", "-1"], "at least 1, got -1"),
    (["provision", "abc"], "whole number >= 1, got 'abc'"),
    (["provision", "2.5"], "whole number >= 1, got '2.5'"),
    (["-c", "Bad_Name", "status"], "invalid cluster name 'Bad_Name'"),
    (["-c", "x" * 33, "provision", "1"], "invalid cluster name"),
    (["-c", "nosuch", "status"], "unknown cluster 'nosuch'"),
    (["-c", "nosuch", "exec", "--", "true"], "unknown cluster 'nosuch'"),
    (["-c", "nosuch", "inject", "examples/hello"], "unknown cluster 'nosuch'"),
    (["provision", "1", "--provider", "nosuch"], "nosuch"),
    (["run", "no-such-playbook"], "unknown cluster"),
])
def test_bad_input_is_one_line_and_changes_nothing(args: list[str], words: str, vca_home: Path) -> None:
    res = vca(*args, check=False)
    assert res.returncode == 2, res.stderr
    assert words in one_error_line(res)
    assert not (vca_home / "clusters").exists() or not any((vca_home / "clusters").iterdir())


def test_not_root(request: pytest.FixtureRequest) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to become another user")
    home = Path(tempfile.mkdtemp(prefix="vca-nobody-"))  # pytest's own tmp folders are root-only
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    os.chown(home, 65534, 65534)
    repo = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
         "vcloud_ansible.cli.main", "provision", "1"],
        capture_output=True, text=True, cwd="/", check=False,
        env={**os.environ, "VCA_HOME": str(home / ".vca"), "HOME": str(home), "PYTHONPATH": str(repo)},
    )
    assert res.returncode == 3
    assert "needs root" in one_error_line(res)
    assert not (home / ".vca" / "clusters").exists()


def test_missing_system_tools(tmp_path: Path, vca_home: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the root check comes first")
    bindir = tmp_path / "bin"  # a PATH with ssh and ip but no systemd-nspawn or mmdebstrap
    bindir.mkdir()
    for tool in ("ssh", "ssh-keygen", "ip", "mount", "losetup"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    res = vca("provision", "1", check=False, env={"PATH": str(bindir)})
    assert res.returncode == 3
    line = one_error_line(res)
    assert "missing system tools" in line and "systemd-nspawn" in line and "apt-get install" in line
    assert not (vca_home / "clusters").exists() or not any((vca_home / "clusters").iterdir())


@pytest.mark.lab
def test_node_index_out_of_range_and_names(cluster_name: str, lab_env: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "2")
    before = [(n.index, n.ip) for n in Registry(lab_env).nodes(c)]
    for args in (["connect", "5", "--", "true"], ["exec", "--node", "2", "--", "true"],
                 ["logs", "9"], ["exec", "--node", "x", "--", "true"]):
        res = vca("-c", c, *args, check=False)
        assert res.returncode == 2, (args, res.stderr)
        line = one_error_line(res)
        assert ("has no node" in line and "(nodes: 0-1)" in line) or "node index must be" in line
    res = vca("-c", c, "provision", "1", "--provider", "local")  # same provider: fine
    res = vca("-c", c, "exec", "--", "true")
    assert [(n.index, n.ip) for n in Registry(lab_env).nodes(c)][:2] == before
