"""Inject under stress on real lab nodes: partial injects then provision, racing injects, repeated
injects with other settings, a full node disk, leftovers of failed injects, pruning, job env modes."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import VCA_ARGV, vca
from test_inject import HELLO, make_pkg, on_node, status, wait_for

from vcloud_ansible.cluster import Cluster
from vcloud_ansible.release import install as release
from vcloud_ansible.release.package import prepare
from vcloud_ansible.release.transport import inject_nodes

pytestmark = pytest.mark.lab
SLEEPER = 'echo "started $(cat tag.txt)"; exec sleep 600'


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in res.stderr.strip().splitlines() if line.startswith("vca: error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1] == lines[0], res.stderr
    return lines[0]


def node_view(c: str, i: int) -> dict[str, str]:
    """current, job (release ids), the job's first pid, and the job's units on node i."""
    out = on_node(c, i, 'echo "current=$(basename "$(readlink ~/vca/current)")"; '
                  'echo "job=$(basename "$(readlink ~/vca/job)")"; echo "pid=$(cat ~/vca/job/proc-0/pid)"; '
                  'echo "units=$(cat ~/vca/job/proc-*/unit 2>/dev/null | sort | tr "\\n" " ")"; '
                  "echo \"active=$(systemctl list-units 'vca-job-*' --state=active --no-legend --plain "
                  "| awk '{print $1}' | sort | tr '\\n' ' ')\"")
    view = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    for key in ("active", "units"):
        view[key] = " ".join(sorted(view.get(key, "").replace(".service", "").split()))
    return view


def test_provision_after_partial_inject_keeps_newer_release(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "2")
    a = make_pkg(tmp_path / "a", SLEEPER, {"tag.txt": "A\n"})
    b = make_pkg(tmp_path / "b", SLEEPER, {"tag.txt": "B\n"})
    vca("-c", c, "inject", str(a), "-e", "SECRET=s3cr3t")
    wait_for(lambda: all(r["job"] == "running" for r in status(c)), "A to run")
    ra = str(status(c)[0]["release"])
    # Job environments may hold secrets: readable by the owner only.
    assert on_node(c, 1, "stat -c %a ~/vca/job/env ~/vca/job/").split() == ["600", "700"]

    # Defect 8: the same package with other settings and no --restart changes nothing, and says so.
    before = [node_view(c, i) for i in (0, 1)]
    res = vca("-c", c, "inject", str(a), "-e", "SECRET=other", "--procs", "2", check=False)
    line = one_error_line(res)
    assert res.returncode == 1, res.stderr
    assert f"release {ra} is already running on 2 nodes with other settings" in line and "--restart" in line
    assert "job started" not in res.stderr
    assert [node_view(c, i) for i in (0, 1)] == before
    assert "SECRET=s3cr3t" in on_node(c, 0, "cat ~/vca/job/env")

    vca("-c", c, "inject", str(b), "--node", "0", "--restart", "--grace", "1")
    wait_for(lambda: status(c)[0]["job"] == "running" and status(c)[0]["job_release"] != ra, "B on node 0")
    rb = str(status(c)[0]["release"])
    n0 = node_view(c, 0)
    n1 = node_view(c, 1)
    assert n0["current"] == n0["job"] == rb and n1["current"] == n1["job"] == ra

    res = vca("-c", c, "provision", "1")
    assert node_view(c, 0) == n0  # node 0 still runs B, the same process
    assert node_view(c, 1) == n1
    assert f"new node 2: release {ra}" in res.stderr, res.stderr  # provision says what the new node got
    wait_for(lambda: status(c)[2]["job"] == "running", "A on the new node")
    n2 = node_view(c, 2)
    assert n2["current"] == n2["job"] == ra
    assert on_node(c, 2, "cat ~/vca/job/env | grep SECRET") == "SECRET=s3cr3t"
    # The existing nodes got the grown contract, nothing else.
    assert len(json.loads(on_node(c, 0, "cat /etc/vca/cluster.json"))) == 3


def _inject_raw(c: str, pkg: Path, results: list[str]) -> None:
    """The node side directly, as `vca run inject` or raw ansible-playbook would reach it: no
    control-side lock."""
    cluster = Cluster(c)
    packed = prepare(pkg, cluster.state.dir / "releases")
    nodes = cluster.nodes()
    res = inject_nodes(cluster.state, nodes, nodes, packed.path, packed.release_id, packed.compression,
                       release.JobOptions(restart=True, grace=1))
    results.append("ok" if res.ok else "; ".join(n.message for n in res.nodes.values() if not n.ok))


def test_racing_injects_leave_no_stray_jobs(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "2")
    rounds = 10
    waited = 0
    for r in range(rounds):
        p1 = make_pkg(tmp_path / f"r{r}a", SLEEPER, {"tag.txt": f"{r}a\n"})
        p2 = make_pkg(tmp_path / f"r{r}b", SLEEPER, {"tag.txt": f"{r}b\n"})
        if r % 2 == 0:  # two `vca inject --restart` at once: the control lock serialises them
            procs = [subprocess.Popen([*VCA_ARGV, "-c", c, "inject", str(p), "--restart", "--grace", "1"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for p in (p1, p2)]
            outs = [p.communicate(timeout=240) for p in procs]
            for p, (_, err) in zip(procs, outs, strict=True):
                assert p.returncode == 0 and "cannot stat" not in err, err
            waited += sum("waiting for inject (pid" in err for _, err in outs)
        else:  # the node side twice at once, bypassing the control lock
            results: list[str] = []
            threads = [threading.Thread(target=_inject_raw, args=(c, p, results)) for p in (p1, p2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=240)
            assert results == ["ok", "ok"], results
    assert waited >= 1  # at least once the second inject said what it waited for

    deadline = time.monotonic() + 30
    while True:  # units of a job just stopped may take a moment to leave the active list
        views = [node_view(c, i) for i in (0, 1)]
        if all(v["active"] == v["units"] for v in views) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for v in views:
        assert v["active"] == v["units"] and len(v["units"].split()) == 1, views
        assert v["current"] == v["job"], views
    rows = status(c)
    assert all(r["job"] == "running" and r["release"] == r["job_release"] for r in rows), rows

    # Old releases are pruned on inject: the last 5 stay, the running one among them.
    for i in (0, 1):
        kept = on_node(c, i, "ls ~/vca/releases").split()
        assert len(kept) == 5 and views[i]["job"] in kept, kept
        assert on_node(c, i, "ls ~/vca/jobs").split() == [views[i]["job"]] or \
            set(on_node(c, i, "ls ~/vca/jobs").split()) <= set(kept)

    # Two teardowns at once: both end well.
    procs = [subprocess.Popen([*VCA_ARGV, "-c", c, "teardown", "--yes"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs


def test_full_node_disk_and_leftovers(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "1")
    big = make_pkg(tmp_path / "big", "true")
    subprocess.run(["dd", "if=/dev/urandom", f"of={big / 'blob.bin'}", "bs=1M", "count=2", "status=none"],
                   check=True)
    on_node(c, 0, "mkdir -p ~/vca/incoming && mount -t tmpfs -o size=512k tmpfs ~/vca/incoming")
    try:
        res = vca("-c", c, "inject", str(big), check=False)
        line = one_error_line(res)
        assert res.returncode == 1 and "disk is full" in line and "free" in line, res.stderr
        assert "arrived incomplete" not in line
        assert on_node(c, 0, "ls -A ~/vca/incoming") == ""  # nothing left behind
    finally:
        on_node(c, 0, "umount ~/vca/incoming")
    # Stale leftovers of earlier failed injects are swept on the next inject.
    on_node(c, 0, "mkdir -p ~/vca/releases/.tmp-dead-1 ~/vca/incoming/.c.dead && "
            "touch ~/vca/incoming/dead.tar ~/vca/incoming/dead.tar.part && "
            "touch -d '3 hours ago' ~/vca/incoming/dead.tar ~/vca/incoming/dead.tar.part "
            "~/vca/incoming/.c.dead ~/vca/releases/.tmp-dead-1")
    vca("-c", c, "inject", str(HELLO))
    assert on_node(c, 0, "ls -A ~/vca/incoming; ls -A ~/vca/releases | grep -c tmp || true") == "0"
    wait_for(lambda: status(c)[0]["job"] == "exited(0)", "hello")
