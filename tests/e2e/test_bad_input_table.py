"""The bad-input table (tests/e2e/bad_inputs): every refused input ends in exactly one line
`vca: error: ...` with the expected words and exit code, no traceback, and changes nothing: not
$VCA_HOME, not the folders it was given, not /dev/null, not the nodes' jobs or releases."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bad_inputs import Case, all_cases
from conftest import TEST_LAB_ENV, lab_missing
from helpers import REPO, VCA_ARGV
from moto_fixtures import AWS_UNSET, MotoServer, aws_env, moto_server

__all__ = ["moto_server"]  # fixture, asked for by name when a case needs it

CASES = [c for c in all_cases() if c.needs != "ha"]  # those run on the HA cluster of test_service.py


@dataclass
class SharedLab:
    """A 2-node lab cluster with examples/hello injected and finished, in its own VCA_HOME."""

    name: str
    env: dict[str, str]
    home: Path


def _run(argv: list[str], env: dict[str, str], timeout: float = 300, unset: tuple[str, ...] = ()
         ) -> subprocess.CompletedProcess[str]:
    # stdin is never a terminal here: what a script or cron job sees.
    full = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run([*VCA_ARGV, *argv], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**full, **env}, timeout=timeout, check=False, cwd=REPO)


def _ok(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = _run(argv, env)
    assert res.returncode == 0, f"vca {' '.join(argv)}: {res.stderr}"
    return res


@pytest.fixture(scope="module")
def shared_lab(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedLab]:
    why = lab_missing()
    if why and not os.environ.get("CI"):
        pytest.skip(f"lab cases: {why}")
    home = tmp_path_factory.mktemp("bad-input-lab") / "home"
    env = {"VCA_HOME": str(home), "VCA_LAB_DIR": str(lab_dir), **TEST_LAB_ENV}
    lab = SharedLab("tb" + uuid.uuid4().hex[:6], env, home)
    try:
        _ok(["-c", lab.name, "provision", "2"], env)
        _ok(["-c", lab.name, "inject", "examples/hello"], env)
        _ok(["-c", lab.name, "wait", "--timeout", "120", "--interval", "0.5"], env)
        yield lab
    finally:
        _run(["-c", lab.name, "teardown", "--yes"], env)


def _lab_state(lab: SharedLab) -> tuple[object, str]:
    """What a refused input must not change on the nodes: per node its state, release, job and guard
    settings (not what moves by itself: the uptime, the guard's clock and idle time), and the release
    folders each one holds."""
    rows = json.loads(_ok(["-c", lab.name, "status", "--json"], lab.env).stdout)
    moving = {"now", "idle_for"}
    jobs = [{k: ({g: w for g, w in v.items() if g not in moving} if k == "guard" else v)
             for k, v in r.items() if k != "uptime"} for r in rows]
    releases = _ok(["-c", lab.name, "exec", "--", "ls ~/vca/releases"], lab.env).stdout
    return jobs, "\n".join(sorted(releases.splitlines()))


@pytest.fixture(scope="module")
def lab_baseline(shared_lab: SharedLab) -> tuple[object, str]:
    return _lab_state(shared_lab)


def _tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: files with their content, links with their target, folders; sockets
    (ssh control masters come and go) left out."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = p.read_bytes().decode(errors="replace")
            elif not stat.S_ISSOCK(st.st_mode):
                out[rel] = f"special {stat.S_IFMT(st.st_mode):o}"
    return out


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, request: pytest.FixtureRequest, tmp_path: Path, vca_home: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    pkg = tmp_path / "pkg" / "hello"
    shutil.copytree(REPO / "examples" / "hello", pkg)
    values = {"tmp": str(tmp), "pkg": str(pkg)}
    env: dict[str, str] = {"VCA_HOME": str(vca_home)}
    unset: tuple[str, ...] = ("VCA_CLUSTER",)
    lab: SharedLab | None = None
    if case.needs == "lab":
        lab = request.getfixturevalue("shared_lab")
        request.getfixturevalue("lab_baseline")
        env = dict(lab.env)
        values["cluster"] = lab.name
    elif case.needs == "aws":
        server: MotoServer = request.getfixturevalue("moto_server")
        server.reset()
        env.update(aws_env(server.url, tmp_path))
        unset += AWS_UNSET  # nothing of the developer's own AWS set-up
    for rel, text in case.files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text)
    env.update({k: _fill(v, values) for k, v in case.env.items()})
    argv = [_fill(a, values) for a in case.argv]
    home = Path(env["VCA_HOME"])
    before = (_tree(home), _tree(tmp), _tree(pkg))

    res = _run(argv, env, unset=unset)

    assert "Traceback" not in res.stdout + res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{res.stderr}"
    assert lines[0].startswith("vca: error: "), res.stderr
    assert case.words in lines[0], res.stderr
    assert res.returncode == case.exit_code, res.stderr
    assert (_tree(home), _tree(tmp), _tree(pkg)) == before, "a refused input changed files"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is no longer a character device"
    if lab is not None:
        assert _lab_state(lab) == request.getfixturevalue("lab_baseline"), "a refused input changed the nodes"


def test_every_case_has_a_doc_line_and_a_unique_id() -> None:
    assert CASES, "no cases found"
    assert all(c.doc for c in CASES), [c.id for c in CASES if not c.doc]
    assert len({c.id for c in CASES}) == len(CASES)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
