"""Collect on real lab nodes: folders per node, manifest, --node, globs, --suffix, overwrite rule,
hostile names, a node down and --retry-failed, raw ansible-playbook; --from-s3 against a moto server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import raw_ansible, vca
from moto_fixtures import MotoServer, moto, moto_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.lab

# Every node writes distinct files and folders into its release, plus a link out and a link in.
LAUNCH = r"""#!/bin/sh
set -e
i=$VCA_NODE_INDEX
mkdir -p results/sub results/deep/er
echo "node $i of $VCA_NUM_NODES" > out.txt
echo "log of node $i" > "results/log-$i.txt"
head -c $((1000 * (i + 1))) /dev/urandom > results/sub/data.bin
echo "deep $i" > results/deep/er/file.txt
printf 'spaced %s' "$i" > "results/sp ace.txt"
ln -s /etc/passwd results/outside
ln -s "log-$i.txt" results/inside
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def make_pkg(root: Path) -> Path:
    root.mkdir(parents=True)
    launch = root / "vcloud-launch"
    launch.write_text(LAUNCH)
    launch.chmod(0o755)
    return root


def wait_done(c: str, n: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < end:
        rows = json.loads(vca("-c", c, "status", "--json").stdout)
        if [r.get("job") for r in rows] == ["exited(0)"] * n:
            return
        time.sleep(0.3)
    detail = vca("-c", c, "exec", "--", "ls -l ~/vca/job/proc-0; journalctl -n 20 --no-pager -u 'vca-job-*'",
                 check=False)
    pytest.fail(f"the package did not finish on {n} nodes: {[(r['name'], r.get('job')) for r in rows]}\n"
                f"{detail.stdout[-4000:]}")


def provision_with_results(c: str, n: int, tmp: Path) -> None:
    vca("-c", c, "provision", str(n))
    vca("-c", c, "inject", str(make_pkg(tmp / "pkg")))
    wait_done(c, n)


def test_collect_folders_manifest_node_glob_suffix_overwrite(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    provision_with_results(c, 4, tmp_path)
    local = tmp_path / "res"
    res = vca("-c", c, "collect", "results", str(local))
    assert f"collected 20 files from 4 of 4 nodes into {local}" in res.stderr
    assert "skipped 4 link(s)" in res.stderr
    assert sorted(p.name for p in local.iterdir()) == [f"{c}-{i}" for i in range(4)] + ["vca-manifest.json"]
    for i in range(4):
        r = local / f"{c}-{i}" / "results"
        assert (r / f"log-{i}.txt").read_text() == f"log of node {i}\n"
        assert (r / "inside").read_text() == f"log of node {i}\n" and not (r / "inside").is_symlink()
        assert not (r / "outside").exists()
        assert (r / "sub" / "data.bin").stat().st_size == 1000 * (i + 1)
        assert (r / "deep" / "er" / "file.txt").read_text() == f"deep {i}\n"
        assert (r / "sp ace.txt").read_text() == f"spaced {i}"
    doc = manifest(local / "vca-manifest.json")
    assert doc["failed_nodes"] == {} and len(doc["files"]) == 20
    rid = json.loads(vca("-c", c, "status", "--json").stdout)[0]["release"]
    for e in doc["files"]:
        f = local / e["local_path"]
        assert f.is_file() and sha(f) == e["sha256"] and f.stat().st_size == e["size"]
        assert e["hostname"] == e["node"] == f"{c}-{e['node_index']}"
        assert e["local_path"].startswith(f"{e['node']}/results/")
        assert e["remote_path"] == f"/root/vca/releases/{rid}/{e['local_path'].split('/', 1)[1]}"
        assert e["instance_id"] is None and e["collected_at"].endswith("Z")

    # Again: nothing is sent (held unchanged), nothing changes.
    again = vca("-c", c, "collect", "results", str(local))
    assert "(0.0 MB written)" in again.stderr
    assert manifest(local / "vca-manifest.json")["files"] == doc["files"]

    # --node 2 (the old scpget) and a glob.
    one = tmp_path / "one"
    vca("-c", c, "collect", "out.txt", str(one), "--node", "2")
    assert [p.name for p in one.iterdir() if p.is_dir()] == [f"{c}-2"]
    assert (one / f"{c}-2" / "out.txt").read_text() == "node 2 of 4\n"
    globbed = tmp_path / "glob"
    vca("-c", c, "collect", "results/log-*.txt", str(globbed), "-n", "0-1")
    assert sorted(str(p.relative_to(globbed)) for p in globbed.rglob("*.txt")) == [
        f"{c}-0/log-0.txt", f"{c}-1/log-1.txt"]

    # --suffix: the old flat form, LOCAL.<index>, files and folders alike.
    flat = tmp_path / "flat"
    vca("-c", c, "collect", "out.txt", str(flat / "out"), "--suffix")
    assert [(flat / f"out.{i}").read_text() for i in range(4)] == [f"node {i} of 4\n" for i in range(4)]
    assert len(manifest(flat / "out.manifest.json")["files"]) == 4
    vca("-c", c, "collect", "results/deep", str(flat / "deep"), "--suffix", "-n", "3")
    assert (flat / "deep.3" / "er" / "file.txt").read_text() == "deep 3\n"

    # Overwrite protection: a local file with other content is kept and its node fails, by name.
    mine = local / f"{c}-1" / "results" / "log-1.txt"
    mine.write_text("my own edit\n")
    res = vca("-c", c, "collect", "results", str(local), check=False)
    assert res.returncode != 0
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("vca: error: collect failed on 1 of 4 nodes:") and f"{c}-1 (" in err
    assert str(mine) in err and "--overwrite" in err
    assert mine.read_text() == "my own edit\n"
    assert f"{c}-1" in manifest(local / "vca-manifest.json")["failed_nodes"]
    vca("-c", c, "collect", "results", str(local), "--overwrite")
    assert mine.read_text() == "log of node 1\n"
    assert manifest(local / "vca-manifest.json")["failed_nodes"] == {}

    # Bad input: one line, non-zero.
    for args, words in ((["collect", "nothing-here", str(tmp_path / "x")], "nothing matches nothing-here"),
                        (["collect", "out.txt", str(tmp_path / "x"), "-n", "9"], "has no node 9"),
                        (["collect", "out.txt", str(mine)], "is a file")):
        res = vca("-c", c, *args, check=False)
        assert res.returncode != 0 and words in res.stderr.strip().splitlines()[-1], (args, res.stderr)


def test_node_down_then_retry_failed(cluster_name: str, lab_env: Path, tmp_path: Path) -> None:
    from vcloud_ansible.lab.registry import Registry

    c = cluster_name
    provision_with_results(c, 3, tmp_path)
    netns = next(n.netns for n in Registry(lab_env).nodes(c) if n.index == 1)
    local = tmp_path / "res"
    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    try:
        started = time.monotonic()
        res = vca("-c", c, "collect", "results", str(local), "--timeout", "8", check=False)
        assert time.monotonic() - started < 30
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    assert res.returncode != 0
    assert "collect failed on 1 of 3 nodes" in res.stderr and f"{c}-1 (" in res.stderr
    assert "--retry-failed" in res.stderr
    assert (local / f"{c}-0" / "results" / "log-0.txt").is_file()
    assert (local / f"{c}-2" / "results" / "log-2.txt").is_file()
    assert not (local / f"{c}-1").exists()
    doc = manifest(local / "vca-manifest.json")
    assert list(doc["failed_nodes"]) == [f"{c}-1"] and len(doc["files"]) == 10

    res = vca("-c", c, "collect", "results", str(local), "--retry-failed")
    assert "from 1 of 1 node" in res.stderr
    doc = manifest(local / "vca-manifest.json")
    assert doc["failed_nodes"] == {} and len(doc["files"]) == 15
    assert {e["node_index"] for e in doc["files"]} == {0, 1, 2}
    assert all(sha(local / e["local_path"]) == e["sha256"] for e in doc["files"])
    assert "nothing to retry" in vca("-c", c, "collect", "results", str(local), "--retry-failed").stderr


HOSTILE_TAR = r"""#!/usr/bin/python3
# A node that lies: whatever it is asked, it sends members that try to leave the collected folder.
import io, sys, tarfile
out = sys.stdout.buffer if sys.argv[-1] == "-" else open(sys.argv[-1], "wb")
with tarfile.open(fileobj=out, mode="w|") as tf:
    def add(name, data=b"evil\n", kind=tarfile.REGTYPE, link=""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
        tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    add("../../../../escape-dotdot.txt")
    add("/tmp/escape-absolute.txt")
    add("root/vca/current/results/link", kind=tarfile.SYMTYPE, link="/tmp")
    add("root/vca/current/results/link/escape-link.txt")
"""


def test_hostile_node_stays_inside_local(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    provision_with_results(c, 2, tmp_path)
    # Node 1's tar is replaced by one that sends hostile members.
    vca("-c", c, "exec", "-n", "1", "--", f"cat > /usr/local/bin/tar <<'EOF'\n{HOSTILE_TAR}EOF\n"
        "chmod 755 /usr/local/bin/tar")
    local = tmp_path / "deep" / "er" / "res"
    before = set(os.listdir("/tmp"))
    res = vca("-c", c, "collect", "results", str(local), "--compression", "none", check=False)
    assert res.returncode != 0 and f"{c}-1 (refused archive member" in res.stderr
    assert (local / f"{c}-0" / "results" / "log-0.txt").is_file()  # the honest node is collected
    outside = [p for p in tmp_path.rglob("*escape*")]
    assert outside == [] and not {n for n in set(os.listdir("/tmp")) - before if "escape" in n}
    assert not list((local / f"{c}-1").rglob("*")) if (local / f"{c}-1").exists() else True


def test_raw_ansible_playbook(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    provision_with_results(c, 2, tmp_path)
    inv = vca("-c", c, "inventory").stdout.strip()
    local = tmp_path / "raw"
    raw = raw_ansible("ansible-playbook", "-i", inv, "playbooks/collect.yml", "-e", "remote=results/",
                      "-e", f"dest={local}")
    assert raw.returncode == 0, raw.stdout + raw.stderr
    assert (local / f"{c}-1" / "log-1.txt").read_text() == "log of node 1\n"  # trailing /: the contents
    doc = manifest(local / "vca-manifest.json")
    assert len(doc["files"]) == 10 and doc["failed_nodes"] == {}
    again = raw_ansible("ansible-playbook", "-i", inv, "playbooks/collect.yml", "-e", "remote=results/",
                        "-e", f"dest={local}")
    assert again.returncode == 0 and again.stdout.count("changed=0") == 2, again.stdout


@pytest.mark.aws
def test_from_s3(moto: MotoServer, tmp_path: Path) -> None:  # noqa: F811
    import boto3

    s3 = boto3.session.Session().client("s3", endpoint_url=moto.url)
    s3.create_bucket(Bucket="results")
    objects = {"run1/demo-0/out.txt": b"zero\n", "run1/demo-1/sub/out.txt": b"one\n",
               "run1/summary.csv": b"a,b\n", "run10/not-mine.txt": b"no\n"}
    for key, body in objects.items():
        s3.put_object(Bucket="results", Key=key, Body=body)
    local = tmp_path / "s3res"
    res = vca("collect", "--from-s3", "s3://results/run1", str(local))
    assert "collected 3 objects" in res.stderr
    assert (local / "demo-0" / "out.txt").read_bytes() == b"zero\n"
    assert (local / "demo-1" / "sub" / "out.txt").read_bytes() == b"one\n"
    assert not (local / "not-mine.txt").exists()
    doc = manifest(local / "vca-manifest.json")
    by_path = {e["local_path"]: e for e in doc["files"]}
    assert by_path["demo-1/sub/out.txt"]["node_index"] == 1 and by_path["summary.csv"]["node_index"] is None
    assert by_path["demo-0/out.txt"]["remote_path"] == "s3://results/run1/demo-0/out.txt"
    assert all(sha(local / p) == e["sha256"] for p, e in by_path.items())

    # Unchanged objects are not downloaded again. A local edit, or an object changed since, is a
    # conflict: the local file is kept unless --overwrite.
    (local / "summary.csv").write_bytes(b"local edit\n")
    s3.put_object(Bucket="results", Key="run1/demo-0/out.txt", Body=b"zero v2\n")
    res = vca("collect", "--from-s3", "s3://results/run1", str(local), check=False)
    assert res.returncode != 0 and "2 S3 object(s) not collected" in res.stderr
    assert "summary.csv exists with other content" in res.stderr and "out.txt exists" in res.stderr
    assert "1 unchanged" in res.stderr
    assert (local / "summary.csv").read_bytes() == b"local edit\n"
    assert (local / "demo-0" / "out.txt").read_bytes() == b"zero\n"
    vca("collect", "--from-s3", "s3://results/run1", str(local), "--overwrite")
    assert (local / "summary.csv").read_bytes() == b"a,b\n"
    assert (local / "demo-0" / "out.txt").read_bytes() == b"zero v2\n"

    # Keys that would leave LOCAL are refused; the rest is collected.
    s3.put_object(Bucket="results", Key="run2/../../escape.txt", Body=b"evil\n")
    s3.put_object(Bucket="results", Key="run2/ok.txt", Body=b"ok\n")
    res = vca("collect", "--from-s3", "s3://results/run2", str(tmp_path / "r2"), check=False)
    assert res.returncode != 0 and "refused key" in res.stderr
    assert (tmp_path / "r2" / "ok.txt").read_bytes() == b"ok\n"
    assert not list(tmp_path.rglob("escape.txt"))
    for bad in ("s3://", "http://x/y", "s3://UPPER/x"):
        res = vca("collect", "--from-s3", bad, str(tmp_path / "r3"), check=False)
        assert res.returncode == 2 and "bad S3 URL" in res.stderr


# -- issue 9: escapes through links, the release a job wrote, a full or read-only local disk --------------
# One 2-node cluster for the tests below (module scope): each injects what it needs.


@pytest.fixture(scope="module")
def shared(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(cluster, env): a 2-node lab cluster with its own VCA_HOME, for the tests of this module that
    share it; pass ``env`` to every vca call (each test's own VCA_HOME is another)."""
    from conftest import module_lab_cluster

    with module_lab_cluster(lab_dir, tmp_path_factory.mktemp("shared-home"), "s", 2) as shared:
        yield shared


def sv(shared: tuple[str, dict[str, str]], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    c, env = shared
    return vca("-c", c, *args, env=env, check=check)


def one_error(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr and lines and lines[-1].startswith("vca: error: "), res.stderr
    return lines[-1]


def inject_and_wait(shared: tuple[str, dict[str, str]], pkg: Path, *extra: str) -> str:
    sv(shared, "inject", str(pkg), *extra)
    end = time.monotonic() + 60
    rows: list[dict[str, Any]] = []
    while time.monotonic() < end:
        rows = json.loads(sv(shared, "status", "--json").stdout)
        if all(r.get("job") == "exited(0)" for r in rows):
            return str(rows[0]["release"])
        time.sleep(0.3)
    pytest.fail(f"the job did not finish: {rows}")


LINKS_OUT = r"""#!/bin/sh
set -e
mkdir -p out fill
echo "a of $VCA_NODE_INDEX" > out/a.txt
ln -sfn /etc/shadow out/shadow
ln -sfn /etc out/etc
ln -sfn a.txt out/in.txt
ln -sfn /etc etcdir
echo small > fill/a.txt
head -c 3000000 /dev/urandom > fill/big.bin
"""


def inject_links_out(shared: Any, tmp_path: Path) -> str:
    pkg = tmp_path / "links"
    pkg.mkdir()
    (pkg / "vcloud-launch").write_text(LINKS_OUT)
    (pkg / "vcloud-launch").chmod(0o755)
    return inject_and_wait(shared, pkg, "--restart")


def test_top_level_links_out_of_the_folder_are_skipped(shared: Any, tmp_path: Path) -> None:
    """Issue 9, 7b: a glob's matches that are links leaving the collected folder are skipped and
    counted like links inside a folder, for relative, ~/ and absolute REMOTE alike."""
    c, _ = shared
    inject_links_out(shared, tmp_path)
    for remote in ("out/*", "~/vca/current/out/*", "/root/vca/current/out/*", "out"):
        local = tmp_path / ("res" + str(abs(hash(remote))))
        res = sv(shared, "collect", remote, str(local))
        got = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        sub = "out/" if remote == "out" else ""
        assert got == sorted([f"{c}-{i}/{sub}{n}" for i in range(2) for n in ("a.txt", "in.txt")]
                             + ["vca-manifest.json"]), (remote, got)
        assert "skipped 4 link(s)" in res.stderr, (remote, res.stderr)
        assert not any("shadow" in p.name or p.name == "passwd" for p in local.rglob("*")), remote
    # A link named as REMOTE itself, or a path through one, leaves the folder too: nothing to collect.
    for remote in ("out/shadow", "etcdir/hostname", "etcdir/", "out/etc/*"):
        res = sv(shared, "collect", remote, str(tmp_path / "none"), check=False)
        err = one_error(res)
        assert res.returncode == 1 and "link" in err and "outside" in err, (remote, err)
    assert not any(p.is_file() and p.name != "vca-manifest.json" for p in (tmp_path / "none").rglob("*"))


def test_node_folder_that_is_a_link_is_refused(shared: Any, tmp_path: Path) -> None:
    """Issue 9, 7c: LOCAL/<cluster>-<i> (or a folder below it) that is a link is never written through."""
    c, _ = shared
    inject_links_out(shared, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    local = tmp_path / "res"
    local.mkdir()
    (local / f"{c}-0").symlink_to(elsewhere)
    res = sv(shared, "collect", "out/a.txt", str(local), check=False)
    err = one_error(res)
    assert res.returncode == 2 and f"{local / f'{c}-0'} is a link" in err, err
    assert list(elsewhere.iterdir()) == []
    assert not (local / f"{c}-1").exists()  # refused before any node was touched
    # The old flat form: LOCAL.<i> that is a link.
    (tmp_path / "flat.1").symlink_to(elsewhere)
    res = sv(shared, "collect", "out/a.txt", str(tmp_path / "flat"), "--suffix", check=False)
    assert res.returncode == 2 and "flat.1 is a link" in one_error(res)
    assert list(elsewhere.iterdir()) == []
    # A folder further down that is a link: that node fails by name, the other is collected.
    (local / f"{c}-0").unlink()
    (local / f"{c}-0").mkdir()
    (local / f"{c}-0" / "out").symlink_to(elsewhere)
    res = sv(shared, "collect", "out", str(local), check=False)
    err = one_error(res)
    assert res.returncode == 1 and f"{c}-0 (" in err and "is a link" in err, err
    assert list(elsewhere.iterdir()) == []
    assert (local / f"{c}-1" / "out" / "a.txt").read_text() == "a of 1\n"


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 2 MB tmpfs of this test's own, unmounted at the end."""
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_full_local_disk_and_read_only_target(shared: Any, small_disk: Path, tmp_path: Path) -> None:
    """Issue 9, lower harm: a full local disk is said as such (not a checksum mismatch), what arrived
    whole is kept, --retry-failed completes once there is room; a read-only LOCAL is one clear line."""
    c, _ = shared
    inject_links_out(shared, tmp_path)
    local = small_disk / "res"
    res = sv(shared, "collect", "fill", str(local), "-n", "0", check=False)
    err = one_error(res)
    assert res.returncode == 1 and f"the local disk is full at {local}" in err, err
    assert "bytes free" in err and "--retry-failed" in err and "checksum" not in err
    doc = manifest(local / "vca-manifest.json")
    assert list(doc["failed_nodes"]) == [f"{c}-0"]
    for e in doc["files"]:  # whatever is there arrived whole
        assert sha(local / e["local_path"]) == e["sha256"]
    assert not [p for p in local.rglob(".vca-*")]
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    sv(shared, "collect", "fill", str(local), "-n", "0", "--retry-failed")
    assert (local / f"{c}-0" / "fill" / "big.bin").stat().st_size == 3000000
    assert (local / f"{c}-0" / "fill" / "a.txt").read_text() == "small\n"

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for target in (local, small_disk / "new"):
        res = sv(shared, "collect", "out/a.txt", str(target), check=False)
        err = one_error(res)
        assert res.returncode == 3 and f"cannot write into {target}" in err and "read-only" in err, err


def test_relative_remote_reads_the_release_whose_job_wrote_it(shared: Any, tmp_path: Path) -> None:
    """Issue 9, defect 2 (collect half): after a re-inject without --restart, ``current`` names the new
    release while the old release's job still runs and writes there: a relative REMOTE is read in the
    release of the node's last job, the manifest names that release, and a file only the current
    release has is pointed at instead of silently collecting nothing or the wrong file."""
    c, _ = shared
    pkgs = {}
    for name in ("A", "B"):
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "vcloud-launch").write_text(f"#!/bin/sh\necho {name} > out.txt\nexec sleep 600\n")
        (pkg / "vcloud-launch").chmod(0o755)
        (pkg / f"only-{name}.txt").write_text(f"static {name}\n")
        pkgs[name] = pkg
    try:
        sv(shared, "inject", str(pkgs["A"]), "--restart")
        end = time.monotonic() + 60
        while time.monotonic() < end:
            rows = json.loads(sv(shared, "status", "--json").stdout)
            if all(r.get("job") == "running" for r in rows) and all(
                    sv(shared, "exec", "-n", str(i), "--", "cat ~/vca/current/out.txt",
                       check=False).returncode == 0 for i in range(2)):
                break
            time.sleep(0.3)
        rel_a = rows[0]["release"]
        res = sv(shared, "inject", str(pkgs["B"]))
        assert "still running" in res.stderr
        rows = json.loads(sv(shared, "status", "--json").stdout)
        rel_b = rows[0]["release"]
        assert rel_b != rel_a and all(r["job_release"] == rel_a and r["job"] == "running" for r in rows)

        local = tmp_path / "res"
        sv(shared, "collect", "out.txt", str(local))
        assert [(local / f"{c}-{i}" / "out.txt").read_text() for i in range(2)] == ["A\n", "A\n"]
        doc = manifest(local / "vca-manifest.json")
        assert sorted((e["node"], e["release"]) for e in doc["files"]) == [(f"{c}-0", rel_a), (f"{c}-1", rel_a)]
        assert all(e["remote_path"] == f"/root/vca/releases/{rel_a}/out.txt" for e in doc["files"])

        # A file that only the current release (whose job never ran) has: say where it is.
        res = sv(shared, "collect", "only-B.txt", str(tmp_path / "b"), check=False)
        err = one_error(res)
        assert res.returncode == 1 and rel_a in err and rel_b in err and "~/vca/current/only-B.txt" in err, err
        assert not (tmp_path / "b" / f"{c}-0").exists()
        # Named through ~/vca/current it comes from there, and the manifest says so.
        sv(shared, "collect", "~/vca/current/only-B.txt", str(tmp_path / "b"))
        doc = manifest(tmp_path / "b" / "vca-manifest.json")
        assert {e["release"] for e in doc["files"]} == {rel_b}
    finally:
        sv(shared, "stop", "--grace", "1", check=False)


def test_cluster_collect_api(shared: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10: Cluster.collect, what `vca collect` calls: a typed result (one outcome per node, in
    node order, the manifest, counts), progress callbacks, a failing node that does not stop the other,
    and retry_failed asking only the node that failed."""
    from vcloud_ansible.cluster import Cluster
    from vcloud_ansible.errors import RemoteFailed

    c, env = shared
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    inject_links_out(shared, tmp_path)
    cluster = Cluster(c)
    started: list[int] = []
    seen: list[str] = []
    res = cluster.collect("out/a.txt", tmp_path / "api", on_start=started.append,
                          on_done=lambda o: seen.append(o.node.dir_name))
    assert res.ok and started == [2] and sorted(seen) == [f"{c}-0", f"{c}-1"]
    assert [o.node.index for o in res.outcomes] == [0, 1] and res.files == 2 and res.bytes > 0
    assert res.manifest_path == tmp_path / "api" / "vca-manifest.json"
    assert [e["node"] for e in manifest(res.manifest_path)["files"]] == [f"{c}-0", f"{c}-1"]
    assert (tmp_path / "api" / f"{c}-1" / "a.txt").read_text() == "a of 1\n"

    mine = tmp_path / "api2" / f"{c}-1" / "a.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine\n")
    res = cluster.collect("out/a.txt", tmp_path / "api2", indexes=[0, 1])
    assert [o.node.dir_name for o in res.failed] == [f"{c}-1"] and len(res.succeeded) == 1
    with pytest.raises(RemoteFailed, match=f"collect failed on 1 of 2 nodes: {c}-1 "):
        res.raise_for_failures()
    assert mine.read_text() == "mine\n"
    mine.unlink()
    started.clear()
    res = cluster.collect("out/a.txt", tmp_path / "api2", retry_failed=True, on_start=started.append)
    assert res.ok and started == [1] and [o.node.dir_name for o in res.outcomes] == [f"{c}-1"]
    assert mine.read_text() == "a of 1\n"
    again = cluster.collect("out/a.txt", tmp_path / "api2", retry_failed=True)
    assert again.nothing_to_retry and again.outcomes == []
