"""The shape of a lab cluster end to end: nodes named by role and name, remove (by index and the K
highest-index idle workers), resize, power off and on with the disks kept. One 5-node cluster for
the module; the steps run in order on it."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import host_leftovers, vca

pytestmark = pytest.mark.lab

Shared = tuple[str, dict[str, str]]


@pytest.fixture(scope="module")
def shared(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    from conftest import module_lab_cluster

    with module_lab_cluster(lab_dir, tmp_path_factory.mktemp("shape-home"), "sh", 5) as shared:
        yield shared
    assert host_leftovers(shared[0]) == []


def sv(shared: Shared, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    c, env = shared
    return vca("-c", c, *args, env=env, check=check)


def indexes(shared: Shared) -> list[int]:
    return [r["index"] for r in json.loads(sv(shared, "status", "--json").stdout)]


def leftovers_of(cluster: str, *idx: int) -> list[str]:
    pattern = re.compile(rf"{cluster}-({'|'.join(map(str, idx))})\b")
    return [line for line in host_leftovers(cluster) if pattern.search(line)]


def test_nodes_named_by_role_name_and_address(shared: Shared) -> None:
    c, _ = shared
    assert sv(shared, "connect", "head", "--", "hostname").stdout.strip() == f"{c}-0"
    assert sv(shared, "connect", f"{c}-3", "--", "hostname").stdout.strip() == f"{c}-3"
    rows = json.loads(sv(shared, "status", "--json").stdout)
    assert sv(shared, "connect", str(rows[2]["address"]), "--", "hostname").stdout.strip() == f"{c}-2"
    res = sv(shared, "exec", "--node", f"{c}-2", "--", "hostname")
    assert res.stdout.splitlines() == [f"{c}-2: {c}-2"]
    res = sv(shared, "exec", "--node", "workers", "--node", "head", "--", "hostname")
    assert sorted(res.stdout.splitlines()) == sorted(f"{c}-{i}: {c}-{i}" for i in range(5))
    res = sv(shared, "connect", "workers", "--", "true", check=False)
    assert res.returncode == 2 and "names 4 nodes" in res.stderr
    res = sv(shared, "exec", "--node", "dev", "--", "true", check=False)
    assert res.returncode == 2 and "no node with role dev" in res.stderr


def test_remove_workers_takes_idle_ones_first_and_leaves_nothing(shared: Shared, tmp_path: Path) -> None:
    c, _ = shared
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    launch = pkg / "vcloud-launch"
    launch.write_text('#!/bin/sh\nif [ "$VCA_NODE_INDEX" = 4 ]; then exec sleep 600; fi\necho done\n')
    launch.chmod(0o755)
    sv(shared, "inject", str(pkg))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # nodes 0-3 finish at once; node 4 runs on
        jobs = {r["index"]: r.get("job") for r in json.loads(sv(shared, "status", "--json").stdout)}
        if all(str(jobs[i]).startswith("exited") for i in range(4)):
            break
        time.sleep(1)
    assert jobs[4] == "running", jobs

    res = sv(shared, "remove", "--workers", "2", check=False)  # no terminal: needs --yes, nothing changed
    assert res.returncode == 2 and "needs --yes" in res.stderr and indexes(shared) == [0, 1, 2, 3, 4]
    started = time.monotonic()
    res = sv(shared, "remove", "--workers", "2", "--yes")
    took = time.monotonic() - started
    assert "removed nodes 2-3 (3 nodes left: 0-1, 4)" in res.stderr, res.stderr
    assert indexes(shared) == [0, 1, 4]
    assert leftovers_of(c, 2, 3) == []
    # The nodes left got the new node list.
    listed = json.loads(sv(shared, "connect", "head", "--", "cat /etc/vca/cluster.json").stdout)
    nodes = listed["nodes"] if isinstance(listed, dict) else listed
    assert sorted(n["index"] for n in nodes) == [0, 1, 4], listed
    hosts = sv(shared, "connect", "4", "--", "cat /etc/hosts").stdout
    assert f"{c}-1" in hosts and f"{c}-2" not in hosts and f"{c}-3" not in hosts
    print(f"remove --workers 2: {took:.1f} s")

    # More workers than there are: every worker, said so; the running one only with --force.
    res = sv(shared, "remove", "--workers", "9", "--yes", check=False)
    assert res.returncode == 2 and f"{c}-4 runs a job" in res.stderr and indexes(shared) == [0, 1, 4]
    res = sv(shared, "remove", "--workers", "9", "--force", "--yes")
    assert "asked for 9 workers" in res.stderr and "removing every worker" in res.stderr, res.stderr
    assert indexes(shared) == [0]
    assert leftovers_of(c, 1, 4) == []
    res = sv(shared, "remove", "--workers", "1", "--yes", check=False)
    assert res.returncode == 2 and "has no workers" in res.stderr


def test_resize_grows_and_shrinks(shared: Shared) -> None:
    c, _ = shared
    res = sv(shared, "resize", "--total", "4", "--json")
    assert json.loads(res.stdout)["added"] == [1, 2, 3] and indexes(shared) == [0, 1, 2, 3]
    ids = {line.split(": ")[0]: line.split(": ")[1]
           for line in sv(shared, "exec", "--", "cat /etc/machine-id").stdout.splitlines()}
    res = sv(shared, "resize", "--total", "2", "--yes", "--json")
    assert json.loads(res.stdout)["removed"] == [3, 2] and indexes(shared) == [0, 1]
    assert leftovers_of(c, 2, 3) == []
    sv(shared, "resize", "--total", "4")
    assert indexes(shared) == [0, 1, 2, 3]
    fresh = {line.split(": ")[0]: line.split(": ")[1]
             for line in sv(shared, "exec", "--node", "2-3", "--", "cat /etc/machine-id").stdout.splitlines()}
    assert all(fresh[k] != ids[k] for k in fresh)  # new machines at indexes 2-3
    assert "nothing to do" in sv(shared, "resize", "--total", "4").stderr


def test_power_off_and_on_keeps_disks(shared: Shared) -> None:
    c, _ = shared
    sv(shared, "exec", "--", "echo kept > /root/marker")
    release = sv(shared, "exec", "--node", "0", "--", "readlink ~/vca/current").stdout.split(": ", 1)[1].strip()
    res = sv(shared, "power", "off", "--node", "workers")
    assert "powered off nodes 1-3" in res.stderr
    rows = {r["index"]: r["state"] for r in json.loads(sv(shared, "status", "--json").stdout)}
    assert rows == {0: "up", 1: "stopped", 2: "stopped", 3: "stopped"}
    assert leftovers_of(c, 1, 2, 3) == []  # nothing runs, nothing mounted: only files on disk
    assert "stopped" in sv(shared, "status").stdout
    started = time.monotonic()
    res = sv(shared, "power", "on")
    took = time.monotonic() - started
    assert "powered on nodes 1-3" in res.stderr
    assert all(r["state"] == "up" for r in json.loads(sv(shared, "status", "--json").stdout))
    out = sv(shared, "exec", "--", "cat /root/marker; readlink ~/vca/current").stdout.splitlines()
    assert sorted(out) == sorted([f"{c}-{i}: kept" for i in range(4)] + [f"{c}-{i}: {release}" for i in range(4)])
    assert sv(shared, "connect", f"{c}-2", "--", "hostname").stdout.strip() == f"{c}-2"
    assert "nothing to power on" in sv(shared, "power", "on").stderr
    print(f"power on 3 nodes: {took:.1f} s")
