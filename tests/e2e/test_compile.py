"""vca compile on real lab nodes: a dev node made with the toolchain role, the example built with SCons
and boost program_options, the binary run here and, packaged, on two workers; a build error; a kept
node that gets only the changed file and recompiles one translation unit; the toolchain role's second
run; raw ansible-playbook; refusals. One cluster for the module (two workers, then the dev node the
first compile makes, kept), so the toolchain is installed once; the tests run in order."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, TEST_LAB_ENV
from helpers import raw_ansible, vca

pytestmark = pytest.mark.lab

EXAMPLE = REPO / "examples" / "compile"
GREETING = "hello, world (built by vca compile)"


class Lab:
    def __init__(self, base: Path) -> None:
        self.name = "tc" + uuid.uuid4().hex[:6]
        self.base = base
        self.home = base / "home"
        self.env = {**TEST_LAB_ENV, "VCA_HOME": str(self.home), "VCA_LAB_DIR": os.environ["VCA_LAB_DIR"]}
        self.src = base / "src"  # a copy of the example that the tests change
        shutil.copytree(EXAMPLE, self.src)

    def vca(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return vca("-c", self.name, *args, check=check, env=self.env, timeout=timeout)

    def compile(self, *args: str, check: bool = True) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
        res = self.vca("compile", *args, "--json", check=check)
        return res, (json.loads(res.stdout) if res.returncode == 0 else {})

    def status(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = json.loads(self.vca("status", "--json").stdout)
        return rows


@pytest.fixture(scope="module")
def lab(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two worker nodes (0, 1); the first compile adds the dev node. Removed after the module."""
    from vcloud_ansible.lab.manager import Lab as LabManager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VCA_LAB_DIR", str(lab_dir))
        for k, v in TEST_LAB_ENV.items():
            mp.setenv(k, v)
        lab = Lab(tmp_path_factory.mktemp("compile"))
        try:
            lab.vca("provision", "2", "--role", "worker")
            yield lab
        finally:
            LabManager().destroy(lab.name, str(lab.home))


def _one_line_refusal(res: subprocess.CompletedProcess[str], text: str) -> None:
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("vca: error: "), res.stderr
    assert text in res.stderr, res.stderr


def test_refusals_before_anything_is_made(lab: Lab, tmp_path: Path) -> None:
    _one_line_refusal(lab.vca("compile", check=False), "SRC is missing")
    _one_line_refusal(lab.vca("compile", str(tmp_path / "nope"), check=False), "does not exist")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.cpp").write_text("int main() {}\n")
    _one_line_refusal(lab.vca("compile", str(tmp_path / "plain"), check=False),
                      "no way to build")
    _one_line_refusal(lab.vca("compile", str(lab.src), "--artifact", "../x", check=False), "leaves the build folder")
    _one_line_refusal(lab.vca("compile", str(lab.src), "--package", str(tmp_path / "p"), check=False),
                      "--package and --launch go together")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    _one_line_refusal(lab.vca("compile", str(lab.src), "--artifact", "hello", "--package", str(tmp_path / "full"),
                              "--launch", str(EXAMPLE / "deploy-launch"), check=False), "is not empty")
    assert [r["role"] for r in lab.status()] == ["worker", "worker"]  # no dev node made


def test_first_compile_makes_the_dev_node_and_the_binary_runs_here(lab: Lab) -> None:
    out, deploy = lab.base / "bin", lab.base / "deploy"
    res, got = lab.compile(str(EXAMPLE), "--artifact", "hello", "--out", str(out), "--keep",
                           "--package", str(deploy), "--launch", str(EXAMPLE / "deploy-launch"))
    assert got["made_node"] is True and got["removed_node"] is False, got
    assert got["how"] == "SConstruct" and got["exit_code"] == 0
    assert got["compiler_invocations"] == 2, res.stderr  # main.cpp and greet.cpp
    assert "g++ -o greet.o -c" in res.stderr  # the build log, streamed to stderr
    assert [(r["index"], r["role"]) for r in lab.status()] == [(0, "worker"), (1, "worker"), (2, "dev")]
    # boost is linked statically (see the SConstruct): the binary needs libstdc++ and libc only.
    assert "libboost_program_options.a" in res.stderr
    run = subprocess.run([str(out / "hello"), "--name", "world"], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == GREETING
    manifest = json.loads((out / "vca-compile-manifest.json").read_text())
    assert manifest["artifacts"][0]["sha256"] == hashlib.sha256((out / "hello").read_bytes()).hexdigest()
    assert sorted(p.name for p in deploy.iterdir()) == ["hello", "vcloud-launch"]
    assert os.access(deploy / "vcloud-launch", os.X_OK) and os.access(deploy / "hello", os.X_OK)


def test_package_runs_on_the_two_workers(lab: Lab) -> None:
    lab.vca("inject", str(lab.base / "deploy"), "--node", "0-1")
    lab.vca("wait", "--timeout", "60")
    for i in (0, 1):
        log = lab.vca("logs", str(i)).stdout
        assert f"hello, node {i} of 3 (built by vca compile)" in log, log


def test_toolchain_second_run_changes_nothing(lab: Lab) -> None:
    assert lab.vca("setup", "--list", "--json").stdout and json.loads(
        lab.vca("setup", "--list", "--json").stdout)["dev"] == ["toolchain"]
    hosts = json.loads(lab.vca("setup", "--node", "2", "--json").stdout)["hosts"]
    assert list(hosts) == [f"{lab.name}-2"] and hosts[f"{lab.name}-2"]["changed"] == 0, hosts
    res = lab.vca("run", "toolchain", "--limit", "dev")  # on demand: the user playbook
    assert "1 ok" in res.stderr, res.stderr
    pkgs = lab.vca("exec", "-n", "2", "--", "dpkg-query -W -f='${Status}\\n' scons ccache cmake g++ "
                   "libboost-program-options-dev | sort -u").stdout
    assert pkgs.strip() == f"{lab.name}-2: install ok installed", pkgs


def test_kept_node_gets_only_the_changed_file(lab: Lab) -> None:
    out = lab.base / "own"
    _, first = lab.compile(str(lab.src), "--artifact", "hello", "--out", str(out))
    assert first["made_node"] is False and first["removed_node"] is False  # the cluster's dev node, kept
    sent = first["files_sent"]
    assert isinstance(sent, list) and len(sent) == first["sources"] and {"greet.cpp", "main.cpp"} <= set(sent)
    _, again = lab.compile(str(lab.src), "--artifact", "hello", "--out", str(out))
    assert again["files_sent"] == [] and again["compiler_invocations"] == 0, again
    greet = lab.src / "greet.cpp"
    greet.write_text(greet.read_text().replace("built by", "rebuilt by"))
    res, one = lab.compile(str(lab.src), "--artifact", "hello", "--out", str(out))
    assert one["files_sent"] == ["greet.cpp"], one
    assert one["compiler_invocations"] == 1, res.stderr  # greet.cpp only; then the link
    assert "g++ -o greet.o -c" in res.stderr and "main.o -c" not in res.stderr
    run = subprocess.run([str(out / "hello")], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "hello, world (rebuilt by vca compile)"


def test_build_error_leaves_out_untouched(lab: Lab) -> None:
    out = lab.base / "own"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    greet = lab.src / "greet.cpp"
    good = greet.read_text()
    greet.write_text(good.replace("return ", "return nonsense "))
    try:
        res = lab.vca("compile", str(lab.src), "--artifact", "hello", "--out", str(out), check=False)
    finally:
        greet.write_text(good)
    assert res.returncode == 2, res.stderr  # scons's own exit status
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("vca: error: the build failed on") and "greet.cpp:4:" in last and "error:" in last, last
    assert "'nonsense' was not declared" in res.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in lab.base.iterdir() if p.name.startswith(".vca-compile-")]


def test_artifact_that_matches_nothing(lab: Lab) -> None:
    out = lab.base / "none"
    res = lab.vca("compile", str(lab.src), "--artifact", "hello", "--artifact", "bin/missing", "--out", str(out),
                  check=False)
    assert res.returncode == 1, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "the build succeeded but --artifact bin/missing: nothing matches" in last, last
    assert not out.exists() or not any(out.iterdir())


def test_raw_playbook(lab: Lab) -> None:
    inv = lab.vca("inventory").stdout.strip()
    out = lab.base / "raw"
    raw = raw_ansible("ansible-playbook", "-i", inv, "playbooks/compile.yml", "-e", f"src={lab.src}",
                      "-e", "artifact=hello", "-e", f"out={out}")
    assert raw.returncode == 0, raw.stdout + raw.stderr
    run = subprocess.run([str(out / "hello")], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "hello, world (rebuilt by vca compile)"
    raw = raw_ansible("ansible-playbook", "-i", inv, "playbooks/compile.yml")
    assert raw.returncode != 0 and "this playbook needs src" in raw.stdout, raw.stdout
