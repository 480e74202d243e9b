"""The README's Python API example, run as it stands on lab nodes: provision, inject, wait, collect and
teardown through ``from vcloud_ansible import Cluster``. The code is read from README.md, so the README
cannot drift from what works."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from helpers import REPO, host_leftovers

pytestmark = pytest.mark.lab

EXAMPLE_CLUSTER = 'Cluster("exp")'


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python API section holds one python example"
    return str(blocks[0])


def test_the_example_uses_only_the_public_api() -> None:
    code = readme_example()
    imports = [line for line in code.splitlines() if line.startswith(("import ", "from "))]
    assert [i for i in imports if "vcloud_ansible" in i] == ["from vcloud_ansible import Cluster"]
    for verb in ("provision", "inject", "wait", "collect", "teardown"):
        assert f"c.{verb}(" in code, verb


def test_readme_example_runs_end_to_end(cluster_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = readme_example()
    assert code.count(EXAMPLE_CLUSTER) == 1
    code = code.replace(EXAMPLE_CLUSTER, f'Cluster("{cluster_name}")')
    monkeypatch.chdir(tmp_path)  # the example's relative paths: examples/ as in a checkout, results/ here
    (tmp_path / "examples").symlink_to(REPO / "examples")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md (Python API)", "exec"), {"__name__": "readme_example"})

    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"release \w+ ran on 4 nodes", lines[0]), lines
    assert lines[1:] == ["0 head index=0", "1 worker index=1", "2 worker index=2", "3 worker index=3"]
    for i in range(4):
        got = (tmp_path / "results" / f"{cluster_name}-{i}" / "result.txt").read_text().splitlines()
        assert got[0] == f"index={i}" and got[1] == "nodes=4" and "greeting=hi" in got
    assert (tmp_path / "results" / "vca-manifest.json").exists()
    # The example's teardown left nothing behind.
    from vcloud_ansible import Cluster

    assert not Cluster(cluster_name).exists()
    assert host_leftovers(cluster_name) == []


def test_logs_text_and_follow(cluster_name: str) -> None:
    from vcloud_ansible import Cluster

    c = Cluster(cluster_name)
    c.provision(1)
    try:
        c.inject(REPO / "examples" / "hello", env={"HELLO_SLEEP": "1"}).raise_for_failures()
        c.wait(timeout=120, interval=0.5)
        assert "hello from node 0 of 1" in c.logs(0)
        lines = c.logs(0, tail=5, follow=True)
        assert next(lines) == "hello from node 0 of 1"
        lines.close()  # ends the remote tail
    finally:
        c.teardown()
    assert host_leftovers(cluster_name) == []
