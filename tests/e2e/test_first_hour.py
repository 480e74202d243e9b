"""The first hour with real workloads (issue 11) on one 2-node lab cluster: connect into the job, follow
commands that end with the job's exit code, re-runs that say what they did and keep their outputs apart,
stop that always records the end."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, VCA_ARGV, vca

pytestmark = pytest.mark.lab

Shared = tuple[str, dict[str, str]]


@pytest.fixture(scope="module")
def shared(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    from conftest import module_lab_cluster

    with module_lab_cluster(lab_dir, tmp_path_factory.mktemp("first-hour-home"), "h", 2) as shared:
        yield shared


def sv(shared: Shared, *args: str, check: bool = True, input: str | None = None,
       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    c, env = shared
    return vca("-c", c, *args, env=env, check=check, input=input, timeout=timeout)


def make_pkg(root: Path, launch: str) -> Path:
    root.mkdir(parents=True)
    script = root / "vcloud-launch"
    script.write_text("#!/bin/sh\n" + launch + "\n")
    script.chmod(0o755)
    return root


def rows(shared: Shared) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(sv(shared, "status", "--json").stdout)
    return out


def on_node(shared: Shared, index: int, command: str) -> str:
    return sv(shared, "exec", "--node", str(index), "--", command).stdout.replace(
        f"{shared[0]}-{index}: ", "").strip()


def test_connect_command_without_index_and_shell_in_the_job(shared: Shared, tmp_path: Path) -> None:
    assert sv(shared, "connect", "--", "hostname").stdout.strip() == f"{shared[0]}-0"
    assert sv(shared, "connect", "1", "--", "hostname").stdout.strip() == f"{shared[0]}-1"
    # before any job: a plain login shell
    assert sv(shared, "connect", "1", input="echo here=$PWD\n").stdout.count("here=/root") == 1
    pkg = make_pkg(tmp_path / "env", 'echo "job $VCA_NODE_INDEX $COLOUR"')
    sv(shared, "inject", str(pkg), "-e", "COLOUR=deep blue")
    sv(shared, "wait", "--timeout", "60")
    out = sv(shared, "connect", "1", input='echo "pwd=$PWD idx=$VCA_NODE_INDEX c=$COLOUR run=$VCA_RUN_DIR"\n').stdout
    release = rows(shared)[1]["release"]
    assert f"pwd=/root/vca/releases/{release} idx=1 c=deep blue run=/root/vca/releases/{release}/runs/1/proc-0" \
        in out


def test_logs_follow_and_attach_end_with_the_job(shared: Shared, tmp_path: Path) -> None:
    pkg = make_pkg(tmp_path / "ends", 'echo "start $VCA_NODE_INDEX"; sleep 3; echo done; exit 7')
    sv(shared, "inject", str(pkg), "--restart")
    res = sv(shared, "logs", "1", "-f", check=False, timeout=60)
    assert res.returncode == 7 and "start 1" in res.stdout and "done" in res.stdout
    res = sv(shared, "attach", "0", check=False, timeout=30)  # the job has ended: prints, ends at once
    assert res.returncode == 7 and "done" in res.stdout
    ok = make_pkg(tmp_path / "ok", "sleep 2; echo fine")
    sv(shared, "inject", str(ok), "--restart")
    res = sv(shared, "attach", "0", check=False, timeout=60)
    assert res.returncode == 0 and "fine" in res.stdout


def test_rerun_says_so_keeps_runs_apart_and_restart_names_stopped(shared: Shared, tmp_path: Path) -> None:
    pkg = make_pkg(tmp_path / "sweep",
                   'echo "p$VCA_PROC_INDEX run $VCA_RUN" > "$VCA_RUN_DIR/out.txt"; echo "log of run $VCA_RUN"')
    sv(shared, "inject", str(pkg), "--procs", "2", "--restart")
    sv(shared, "wait", "--timeout", "60")
    again = sv(shared, "inject", str(pkg), "--procs", "2")
    assert "already ran on 2 nodes (exited 0): --restart runs it again" in again.stderr, again.stderr
    sv(shared, "inject", str(pkg), "--procs", "2", "--restart")
    sv(shared, "wait", "--timeout", "60")
    files = on_node(shared, 0, "cd ~/vca/current && cat runs/*/proc-*/out.txt && cat vca-job-0.log "
                    "&& cat runs/1/vca-job-1.log")
    assert files.splitlines() == ["p0 run 1", "p1 run 1", "p0 run 2", "p1 run 2", "log of run 2", "log of run 1"]
    assert "log of run 2" in sv(shared, "logs", "0").stdout and "run 1" not in sv(shared, "logs", "0").stdout
    sv(shared, "collect", "vca-job-0.log", str(tmp_path / "got"), "--node", "0")  # the old name still collects
    assert (tmp_path / "got" / f"{shared[0]}-0" / "vca-job-0.log").read_text() == "log of run 2\n"
    slow = make_pkg(tmp_path / "slow", "sleep 300")
    sv(shared, "inject", str(slow))
    release = rows(shared)[0]["release"]
    res = sv(shared, "inject", str(pkg), "--procs", "2", "--restart", "--grace", "1")
    assert f"stopped the job of release {release} on {shared[0]}-0, {shared[0]}-1" in res.stderr, res.stderr


def test_stop_always_records_end_and_exit(shared: Shared, tmp_path: Path) -> None:
    # each process says when its trap is set: a stop before that ends the shell with 143, as it should
    armed = 'touch "$VCA_RUN_DIR/armed"; '
    trap = make_pkg(tmp_path / "trap", "trap 'exit 3' TERM; " + armed + "sleep 300 & wait")
    stubborn = make_pkg(tmp_path / "stubborn", "trap '' TERM; " + armed + "sleep 300 & while :; do wait; done")
    for pkg, codes in ((trap, {"exited(3)"}), (stubborn, {"exited(137)", "exited(143)"})):
        for _ in range(2):
            sv(shared, "inject", str(pkg), "--procs", "2", "--restart", "--grace", "1")
            wait_armed(shared)
            sv(shared, "stop", "--grace", "1")
            for r in rows(shared):
                assert r["job"] in codes and r["since"], r


def wait_armed(shared: Shared) -> None:
    """Until both processes of the current run on both nodes have set their trap (bounded)."""
    check = 'cd ~/vca/current/runs/"$(ls ~/vca/current/runs | sort -n | tail -1)" && ls proc-*/armed | wc -l'
    deadline = time.monotonic() + 30
    for _ in range(120):
        out = sv(shared, "exec", "--", check, check=False).stdout
        if out.count(": 2") == 2:
            return
        assert time.monotonic() < deadline, out
        time.sleep(0.25)
    raise AssertionError("the jobs never set their traps")


def test_wait_for_some_nodes_and_say_what_runs(shared: Shared, tmp_path: Path) -> None:
    c = shared[0]
    pkg = make_pkg(tmp_path / "serve", 'if [ "$VCA_NODE_INDEX" = 0 ]; then exec sleep 300; fi; sleep 1; echo client')
    sv(shared, "inject", str(pkg), "--restart", "--grace", "1")
    assert "jobs finished on 1 node" in sv(shared, "wait", "--node", "1", "--timeout", "60").stderr
    res = sv(shared, "wait", "--timeout", "3", "--interval", "0.5", check=False)
    assert res.returncode != 0
    assert res.stderr.splitlines() == [f"vca: 1 of 2 nodes still running: {c}-0 running `sleep 300`",  # once
                                       f"vca: error: jobs still running after 3 s on {c}-0 (`sleep 300`)"]
    sv(shared, "stop", "--grace", "1")


def test_old_mkpkg_tarball_runs(shared: Shared, tmp_path: Path) -> None:
    make_pkg(tmp_path / "app", 'echo "old style on $VCA_NODE_INDEX"')
    tb = tmp_path / "app.tar.gz"
    subprocess.run(["tar", "czf", str(tb), "-C", str(tmp_path), "app"], check=True)  # as the old mkpkg did
    res = sv(shared, "inject", str(tb), "--restart", "--grace", "1")
    assert f"{tb} holds its package in the folder app/ (as the old mkpkg made it): repacked without that folder" \
        in res.stderr
    sv(shared, "wait", "--timeout", "60")
    assert "old style on 1" in sv(shared, "logs", "1").stdout


def test_ssh_scp_rsync_by_address(shared: Shared, tmp_path: Path) -> None:
    c = shared[0]
    cfg = tmp_path / "ssh.conf"
    cfg.write_text(sv(shared, "ssh-config").stdout)
    addr = str(rows(shared)[1]["address"])
    run = {"capture_output": True, "text": True, "timeout": 60, "check": False}
    res = subprocess.run(["ssh", "-F", str(cfg), addr, "hostname"], **run)  # type: ignore[call-overload]
    assert (res.returncode, res.stdout.strip()) == (0, f"{c}-1"), res.stderr
    (tmp_path / "f.txt").write_text("by address\n")
    res = subprocess.run(["scp", "-F", str(cfg), str(tmp_path / "f.txt"), f"{addr}:/tmp/f.txt"], **run)  # type: ignore[call-overload]
    assert res.returncode == 0, res.stderr
    assert on_node(shared, 1, "cat /tmp/f.txt") == "by address"
    # rsync is not in the lab image: through the lab's apt proxy, bounded
    on_node(shared, 1, "command -v rsync || { timeout 100 apt-get -o Acquire::Retries=3 update -qq && "
            "DEBIAN_FRONTEND=noninteractive timeout 100 apt-get install -y -qq rsync >/dev/null; }")
    res = subprocess.run(["rsync", "-e", f"ssh -F {cfg}", f"{addr}:/tmp/f.txt", str(tmp_path / "back.txt")],
                         **run)  # type: ignore[call-overload]
    assert res.returncode == 0 and (tmp_path / "back.txt").read_text() == "by address\n", res.stderr


def test_put_file_and_folder_never_into_a_release(shared: Shared, tmp_path: Path) -> None:
    c = shared[0]
    (tmp_path / "data.csv").write_text("x,y\n1,2\n")
    res = sv(shared, "put", str(tmp_path / "data.csv"), "data/")
    assert "put 1 file" in res.stderr and "on 2 of 2 nodes at /root/data/data.csv" in res.stderr, res.stderr
    inputs = tmp_path / "inputs"
    (inputs / "deep").mkdir(parents=True)
    (inputs / "deep" / "a.txt").write_text("a\n")
    (inputs / "b.txt").write_text("b\n")
    sv(shared, "put", str(inputs), "/srv/in", "--node", "1")
    (inputs / "c.txt").write_text("c\n")
    (inputs / "b.txt").write_text("b2\n")
    sv(shared, "put", str(inputs), "/srv/in", "--node", "1")  # an existing folder: merged into, newer files win
    assert on_node(shared, 1, "cat /root/data/data.csv /srv/in/deep/a.txt /srv/in/b.txt /srv/in/c.txt") == \
        "x,y\n1,2\na\nb2\nc"
    assert on_node(shared, 0, "ls /srv/in 2>/dev/null || echo none") == "none"
    # never into ~/vca: refused here (exit 2), and on the nodes after resolving links
    before = on_node(shared, 0, "ls -R ~/vca/current | md5sum")
    res = sv(shared, "put", str(tmp_path / "data.csv"), "~/vca/current/", check=False)
    assert res.returncode == 2 and "inside ~/vca" in res.stderr
    sv(shared, "exec", "--", "ln -sfn /root/vca/current /root/cur")  # a way in that the text does not show
    res = sv(shared, "put", str(tmp_path / "data.csv"), "/root/cur/x.csv", check=False)
    assert res.returncode != 0 and f"put failed on 2 of 2 nodes: {c}-0 (/root/vca/" in res.stderr, res.stderr
    assert "is inside /root/vca, where vca keeps the releases and their jobs" in res.stderr
    assert on_node(shared, 0, "ls -R ~/vca/current | md5sum") == before
    assert on_node(shared, 0, "ls -a /root/vca/releases | grep -c vca-put || true") == "0"


def readme_recipe(name: str) -> str:
    """The shell lines of the README block marked ``<!-- recipe: NAME -->`` (4-space indented)."""
    lines = (REPO / "README.md").read_text().splitlines()
    at = lines.index(f"<!-- recipe: {name} -->") + 1
    block = []
    while at < len(lines) and lines[at].startswith("    "):
        block.append(lines[at][4:])
        at += 1
    assert block, f"recipe {name} has no block"
    return "\n".join(block) + "\n"


def run_recipe(shared: Shared, name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a README recipe as it stands, `vca` being this checkout's CLI on the shared cluster."""
    c, env = shared
    bindir = cwd / ".bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "vca"
    wrapper.write_text(f"#!/bin/sh\nexec {' '.join(map(shlex.quote, VCA_ARGV))} -c {c} \"$@\"\n")
    wrapper.chmod(0o755)
    (cwd / "examples").is_symlink() or (cwd / "examples").symlink_to(REPO / "examples")
    res = subprocess.run(["sh", "-ec", readme_recipe(name)], cwd=cwd, capture_output=True, text=True, timeout=180,
                         env={**os.environ, **env, "PATH": f"{bindir}:{os.environ['PATH']}",
                              "PYTHONPATH": str(REPO)}, check=False)
    assert res.returncode == 0, f"recipe {name}:\n{res.stdout}\n{res.stderr}"
    return res


def test_recipe_sweep(shared: Shared, tmp_path: Path) -> None:
    res = run_recipe(shared, "sweep", tmp_path)
    assert res.stdout.splitlines() == [f"{i} {i * i}" for i in range(1, 9)]
    # four processes, two values each, each in its own folder
    assert sorted(p.parent.name for p in tmp_path.glob("results/*/*/proc-*/results.txt")) == \
        ["proc-0", "proc-0", "proc-1", "proc-1"]


def test_recipe_head_server(shared: Shared, tmp_path: Path) -> None:
    res = run_recipe(shared, "head-server", tmp_path)
    assert f"task from {shared[0]}-0" in res.stdout
    assert [r["job"] for r in rows(shared)] == ["exited(143)", "exited(0)"]
