"""Bad input gets one clear line, a non-zero exit code, and changes nothing. The table of refused inputs
is tests/e2e/bad_inputs (run by test_bad_input_table.py); here the cases that need a cluster of their own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import VCA_ARGV, vca

from vcloud_ansible.lab.registry import Registry


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("vca: error: "), res.stderr
    return lines[0]


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


def _jobs(cluster: str) -> list[str]:
    return [str(r.get("job")) for r in json.loads(vca("-c", cluster, "status", "--json").stdout)]


@pytest.mark.lab
def test_selections_names_and_scripts_cannot_hit_every_node(cluster_name: str, lab_env: Path) -> None:
    """`stop --node 1-0` stopped every job; `--node 0-99999999` built a 7.8 GB list; `-c ''` and a
    teardown from a script destroyed 'default'; `exec -- CMD` with CMD exiting 255 said 'unreachable'."""
    c = cluster_name
    vca("-c", c, "provision", "2")
    vca("-c", c, "inject", "examples/hello", "-e", "HELLO_SLEEP=600")
    assert _jobs(c) == ["running", "running"]

    res = vca("-c", c, "stop", "--node", "1-0", check=False)
    assert res.returncode == 2 and "node range '1-0' is reversed" in one_error_line(res)
    started = time.monotonic()
    res = vca("-c", c, "stop", "--node", "0-99999999", check=False)
    assert res.returncode == 2 and "has no node 2-99999999 (nodes: 0-1)" in one_error_line(res)
    assert time.monotonic() - started < 10
    for single in (["connect", "0-1"], ["logs", "0,1"], ["attach", "1-0"]):
        res = vca("-c", c, *single, check=False)
        assert res.returncode == 2 and f"{single[0]} takes one node" in one_error_line(res)
    assert _jobs(c) == ["running", "running"]  # nothing was stopped

    # A script whose cluster variable is unset, or that forgets --yes: nothing is torn down.
    for argv, env, words in ((["-c", "", "teardown"], {}, "empty cluster name"),
                             (["teardown"], {"VCA_CLUSTER": ""}, "VCA_CLUSTER is set but empty"),
                             (["-c", c, "teardown"], {}, "needs --yes"),
                             (["-c", c, "destroy"], {}, "needs --yes")):
        res = subprocess.run([*VCA_ARGV, *argv], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             env={**os.environ, **env}, timeout=60, check=False)
        assert res.returncode == 2 and words in one_error_line(res), (argv, res.stderr)
    assert len(Registry(lab_env).nodes(c)) == 2 and _jobs(c) == ["running", "running"]

    # The command's own exit 255 is not ssh failing to reach the node.
    res = vca("-c", c, "exec", "--node", "1", "--", "echo out; echo err >&2; exit 255", check=False)
    assert res.returncode == 1, res.stderr
    assert f"{c}-1 (exit 255)" in res.stderr and "unreachable" not in res.stderr, res.stderr
    assert res.stdout == f"{c}-1: out\n" and f"{c}-1: err" in res.stderr and "vca:started" not in res.stderr
    vca("-c", c, "stop", "--node", "0-1", "--grace", "1")
    assert _jobs(c)[0] != "running" and _jobs(c)[1] != "running"
    vca("-c", c, "teardown", "--yes")
