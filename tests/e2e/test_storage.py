"""Storage roles on real lab nodes (issue 14): the scratch volume on zero, one and two loop-backed
disks (btrfs raid0 here: this kernel has no md), after a reboot and on disks that come back empty,
a foreign filesystem refused unless forced, a second run that changes nothing, VCA_SCRATCH in jobs
on both inject paths; an s3fs mount of a bucket served by moto on the lab bridge's host address,
its cache on the scratch volume, its secret nowhere but the node's 0600 passwd file. One cluster for
the module (0 head, 1-3 workers); the tests run in order and build on each other."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_LAB_ENV
from helpers import vca

pytestmark = pytest.mark.lab

DISK_MB = 256
BUCKET = "vca-storage-test"
S3FS_SECRET = "vca-s3fs-secret-" + uuid.uuid4().hex[:8]  # unique: proves it was stored nowhere else


class Lab:
    def __init__(self, home: Path, lab_dir: Path) -> None:
        self.name = "tst" + uuid.uuid4().hex[:5]
        self.home = home
        self.lab_dir = lab_dir
        self.env = {**TEST_LAB_ENV, "VCA_HOME": str(home), "VCA_LAB_DIR": str(lab_dir)}
        self.disks: dict[int, list[str]] = {}
        self.s3_url = ""
        self.aws: dict[str, str] = {}

    def s3(self) -> Any:
        import boto3

        with pytest.MonkeyPatch.context() as mp:
            for k, v in self.aws.items():
                mp.setenv(k, v)
            return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1")

    @property
    def dir(self) -> Path:
        return self.home / "clusters" / self.name

    def vca(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return vca("-c", self.name, *args, check=check, env=self.env)

    def on_nodes(self, command: str, nodes: str = "") -> dict[int, str]:
        """``command``'s output on every node (or ``nodes``), by index, lines joined by '|'."""
        res = self.vca("exec", *(["--node", nodes] if nodes else []), "--", command, check=False)
        out: dict[int, list[str]] = {}
        for line in res.stdout.splitlines():
            name, _, text = line.partition(":")
            if name.startswith(self.name + "-"):
                out.setdefault(int(name.rsplit("-", 1)[1]), []).append(text.strip())
        return {i: "|".join(lines) for i, lines in out.items()}

    def add_disk(self, index: int) -> str:
        from vcloud_ansible.lab.manager import Lab as LabManager

        dev = LabManager().add_disk(self.name, index, DISK_MB)
        self.disks.setdefault(index, []).append(dev)
        return dev

    def host_vars(self, index: int, values: dict[str, object]) -> None:
        """Variables for one node, next to the cluster's inventory (Ansible reads host_vars/ there)."""
        d = self.dir / "host_vars"
        d.mkdir(exist_ok=True)
        (d / f"{self.name}-{index}.yml").write_text(json.dumps(values) + "\n")

    def setup_hosts(self, *args: str) -> dict[str, dict[str, int]]:
        res = self.vca("setup", "--json", *args)
        hosts: dict[str, dict[str, int]] = json.loads(res.stdout)["hosts"]
        return hosts

    def reboot(self, index: int) -> None:
        """Reboot node ``index`` from inside and wait until it answers with a new boot id."""
        node = str(index)
        before = self.on_nodes("cat /proc/sys/kernel/random/boot_id", node)[index]
        self.vca("exec", "--node", node, "--", "systemctl reboot", check=False)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            res = self.vca("exec", "--node", node, "--timeout", "5", "--",
                           "cat /proc/sys/kernel/random/boot_id; systemctl is-system-running --wait >/dev/null; true",
                           check=False)
            if res.returncode == 0 and res.stdout and before not in res.stdout:
                return
            time.sleep(0.5)
        pytest.fail(f"node {index} did not come back after a reboot")


def _loops_of(lab_dir: Path, cluster: str) -> list[str]:
    res = subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True, check=False)
    devs = json.loads(res.stdout or '{"loopdevices": []}')["loopdevices"]
    prefix = str(lab_dir / "nodes" / cluster) + "-"
    return [d["name"] for d in devs if str(d.get("back-file") or "").startswith(prefix)]


@pytest.fixture(scope="module")
def lab(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Four nodes: 0 head (no scratch), 1 worker without disks, 2 with one disk, 3 with two."""
    from moto_fixtures import aws_env, start_moto

    from vcloud_ansible.lab.config import LabConfig
    from vcloud_ansible.lab.manager import Lab as LabManager

    base = tmp_path_factory.mktemp("storage")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VCA_LAB_DIR", str(lab_dir))
        for k, v in TEST_LAB_ENV.items():
            mp.setenv(k, v)
        lab = Lab(base / "home", lab_dir)
        server = None
        try:
            lab.vca("provision", "4")
            lab.add_disk(2)
            lab.add_disk(3)
            lab.add_disk(3)
            gateway = LabConfig.from_env().gateway  # the only host address the nodes can reach
            server = start_moto(base / "moto", ami_validation=False, host=gateway)
            lab.s3_url = server.url
            lab.aws = {**aws_env(server.url, base), "NO_PROXY": gateway, "no_proxy": gateway}
            lab.s3().create_bucket(Bucket=BUCKET)
            yield lab
        finally:
            if server is not None:
                server.stop()
            LabManager().destroy(lab.name, str(lab.home))
            assert _loops_of(lab_dir, lab.name) == [], "the nodes' loop devices outlived them"


def test_scratch_on_zero_one_two_disks(lab: Lab) -> None:
    for i in (2, 3):
        lab.host_vars(i, {"scratch_disks": lab.disks[i]})
    res = lab.vca("setup", "--add", "scratch", "--on", "worker")
    assert "applied the setup roles on nodes 1-3" in res.stderr, res.stderr
    fs = lab.on_nodes("(findmnt -n -o FSTYPE,OPTIONS /scratch | tr -s ' ' | cut -d, -f1,2; stat -c '%U %a' /scratch; "
                      "cat /etc/vca/scratch) 2>&1")
    assert fs[0].startswith("stat: cannot"), fs  # the head gets no scratch role
    assert fs[1] == "root 755|/scratch", fs  # no disk: a folder on the root disk
    assert fs[2] == "ext4 rw,noatime|root 755|/scratch", fs
    assert fs[3] == "btrfs rw,noatime|root 755|/scratch", fs
    raid = lab.on_nodes("btrfs filesystem df /scratch; blkid -s LABEL -o value " + " ".join(lab.disks[3]), "3")[3]
    assert "Data, RAID0" in raid and raid.endswith("vca-scratch|vca-scratch"), raid
    label = lab.on_nodes(f"blkid -s LABEL -o value {lab.disks[2][0]}", "2")[2]
    assert label == "vca-scratch"


def _s3fs_vars(lab: Lab, bucket: str) -> None:
    (lab.dir / "group_vars").mkdir(exist_ok=True)
    (lab.dir / "group_vars" / "workers.yml").write_text(json.dumps({
        "s3fs_bucket": bucket, "s3fs_endpoint_url": lab.s3_url, "s3fs_path_style": True,
        "s3fs_ensure_diskfree_mb": 64, "s3fs_parallel_count": 4}) + "\n")


def test_s3fs_mounts_the_bucket_with_its_cache_on_scratch(lab: Lab) -> None:
    # The key only in vca's environment: the role reads it there, no file of the cluster holds it.
    lab.env |= {"VCA_S3FS_ACCESS_KEY_ID": "testing", "VCA_S3FS_SECRET_ACCESS_KEY": S3FS_SECRET}
    _s3fs_vars(lab, "Not_A_Bucket")
    res = lab.vca("setup", "--add", "s3fs", "--on", "worker", check=False)
    assert res.returncode == 1 and "s3fs_bucket must be a valid bucket name" in res.stderr, res.stderr
    assert "got 'Not_A_Bucket'" in res.stderr
    assert lab.on_nodes("ls /s3 /etc/vca/s3fs.passwd 2>&1 | grep -c 'No such'", "1-3") == {1: "2", 2: "2", 3: "2"}

    _s3fs_vars(lab, BUCKET)
    res = lab.vca("setup")
    assert "applied the setup roles on nodes 1-3" in res.stderr, res.stderr

    lab.on_nodes("echo written on $(hostname) > /s3/from-$(hostname).txt", "1-3")
    s3 = lab.s3()
    for i in (1, 2, 3):
        body = s3.get_object(Bucket=BUCKET, Key=f"from-{lab.name}-{i}.txt")["Body"].read()
        assert body == f"written on {lab.name}-{i}\n".encode()
    s3.put_object(Bucket=BUCKET, Key="from-control.txt", Body=b"from the control machine\n")
    got = lab.on_nodes("cat /s3/from-control.txt; stat -c %a /etc/vca/s3fs.passwd", "1-3")
    assert got == {1: "from the control machine|600", 2: "from the control machine|600",
                   3: "from the control machine|600"}, got

    opts = lab.on_nodes("findmnt -n -o FSTYPE /s3; grep ' /s3 ' /etc/fstab", "2")[2].split("|")
    assert opts[0] == "fuse.s3fs", opts
    fstab = opts[1].split()[3].split(",")
    for want in ("allow_other", "parallel_count=4", f"url={lab.s3_url}", "use_path_request_style",
                 "use_cache=/scratch/.s3fs-cache", "ensure_diskfree=64", "passwd_file=/etc/vca/s3fs.passwd"):
        assert want in fstab, fstab
    assert S3FS_SECRET not in opts[1]
    cache = lab.on_nodes("cat /s3/from-control.txt >/dev/null; ls /scratch/.s3fs-cache/", "2")[2]
    assert BUCKET in cache, cache  # s3fs keeps its cache under <cache>/<bucket>

    # The secret: nowhere under VCA_HOME (run artifacts included), nowhere in the nodes' logs.
    leaks = subprocess.run(["grep", "-rl", S3FS_SECRET, str(lab.home)], capture_output=True, text=True)
    assert leaks.stdout == "" and (lab.dir / "runs").is_dir(), leaks.stdout
    logs = lab.on_nodes(f"journalctl --no-pager -o cat | grep -c {S3FS_SECRET}; "
                        f"grep -rl {S3FS_SECRET} /var/log /root /tmp /etc | tr '\\n' ' '; echo")
    assert logs == {0: "0|", 1: "0|/etc/vca/s3fs.passwd", 2: "0|/etc/vca/s3fs.passwd",
                    3: "0|/etc/vca/s3fs.passwd"}, logs


def test_second_run_changes_nothing(lab: Lab) -> None:
    hosts = lab.setup_hosts()
    assert sorted(hosts) == [f"{lab.name}-{i}" for i in (1, 2, 3)]
    assert all(h["changed"] == 0 and h["failed"] == 0 for h in hosts.values()), hosts


def test_jobs_see_vca_scratch_on_both_inject_paths(lab: Lab, tmp_path: Path) -> None:
    for path in ("ssh", "ansible"):
        pkg = tmp_path / path  # a package of its own per path: a new release each time
        pkg.mkdir()
        launch = pkg / "vcloud-launch"
        launch.write_text(f'#!/bin/sh\n# {path}\nprintf "%s" "${{VCA_SCRATCH-unset}}" > scratch.seen\n')
        launch.chmod(0o755)
        if path == "ssh":
            lab.vca("inject", str(pkg))
        else:
            lab.vca("run", "inject", f"pkg={pkg}")
        lab.vca("wait", "--timeout", "60")
        seen = lab.on_nodes("cat ~/vca/current/scratch.seen")
        assert seen == {0: "unset", 1: "/scratch", 2: "/scratch", 3: "/scratch"}, (path, seen)


def test_mounted_again_after_reboot_and_made_again_when_empty(lab: Lab) -> None:
    lab.on_nodes("echo kept > /scratch/kept; echo kept > /s3/kept.txt", "2-3")
    # Node 2's disk comes back empty, as EC2 instance store does after a stop/start.
    lab.on_nodes(f"umount /scratch && wipefs -a {lab.disks[2][0]} >/dev/null", "2")
    for i in (2, 3):
        lab.reboot(i)
    after = lab.on_nodes("findmnt -n -o FSTYPE /scratch; cat /scratch/kept 2>/dev/null || echo gone; "
                         "stat -c '%U %a' /scratch; findmnt -n -o FSTYPE /s3; cat /s3/kept.txt; "
                         "test -d /scratch/.s3fs-cache && echo cache", "2-3")
    assert after == {2: "ext4|gone|root 755|fuse.s3fs|kept|cache",
                     3: "btrfs|kept|root 755|fuse.s3fs|kept|cache"}, after
    hosts = lab.setup_hosts("--node", "2,3")
    assert all(h["changed"] == 0 for h in hosts.values()), hosts


def test_foreign_filesystem_is_refused_unless_forced(lab: Lab) -> None:
    dev = lab.add_disk(1)
    # Someone else's filesystem with data on it, made on the host.
    subprocess.run(["mkfs.ext4", "-q", "-L", "data", dev], check=True, capture_output=True)
    mnt = lab.home / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", dev, str(mnt)], check=True)
    try:
        (mnt / "precious").write_text("data\n")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)

    lab.host_vars(1, {"scratch_disks": ["/dev/nosuchdisk"]})
    res = lab.vca("setup", "--node", "1", check=False)
    assert res.returncode == 1 and "scratch disk not found: /dev/nosuchdisk" in res.stderr, res.stderr

    lab.host_vars(1, {"scratch_disks": [dev]})
    res = lab.vca("setup", "--node", "1", check=False)
    assert res.returncode == 1, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert f"{lab.name}-1 (Refuse what the plan refused: {dev} holds ext4 labelled 'data': not formatted" in last
    assert "set scratch_force: true to reformat it" in last
    assert lab.on_nodes(f"findmnt -n /scratch || blkid -s LABEL -o value {dev}", "1")[1] == "data"

    lab.host_vars(1, {"scratch_disks": [dev], "scratch_force": True})
    assert lab.setup_hosts("--node", "1")[f"{lab.name}-1"]["changed"] > 0
    lab.host_vars(1, {"scratch_disks": [dev]})
    assert lab.setup_hosts("--node", "1")[f"{lab.name}-1"]["changed"] == 0
    got = lab.on_nodes(f"findmnt -n -o FSTYPE /scratch; blkid -s LABEL -o value {dev}; ls /scratch", "1")[1]
    assert got == "ext4|vca-scratch|lost+found", got


INIT_OK = """#!/bin/sh
# a user's init script: it sees the storage roles' work done (on workers) and records each run
date +%s.%N >> /var/tmp/init-runs
echo "init on $(hostname) as $(id -un): scratch=$(cat /etc/vca/scratch 2>/dev/null || echo none)"
if [ -f /etc/vca/s3fs.passwd ]; then mountpoint -q /s3 && echo s3 mounted; fi
"""
INIT_FAIL = "echo about to fail\nexit 3\n"  # no #! line: run by /bin/sh


def _init_state(lab: Lab) -> dict[int, object]:
    rows = json.loads(lab.vca("status", "--json").stdout)
    return {r["index"]: r["init_exit"] for r in rows}


def test_init_script_runs_once_on_late_nodes_and_on_setup(lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "init.sh"
    script.write_text(INIT_OK)
    res = lab.vca("provision", "1", "--role", "dev", "--init-script", str(script))
    assert "setting up 1 new node: init_script" in res.stderr, res.stderr
    assert f"`vca -c {lab.name} setup --node 0,1,2,3` applies them" in res.stderr, res.stderr
    assert _init_state(lab) == {0: None, 1: None, 2: None, 3: None, 4: 0}
    log = lab.vca("logs", "--init", "4").stdout
    assert log == f"init on {lab.name}-4 as root: scratch=none\n", log

    # The nodes from before run it on `vca setup`, after their storage roles; node 4 not again.
    lab.vca("setup")
    runs = lab.on_nodes("wc -l < /var/tmp/init-runs")
    assert runs == {i: "1" for i in range(5)}, runs
    assert lab.vca("logs", "--init", "2").stdout == f"init on {lab.name}-2 as root: scratch=/scratch\ns3 mounted\n"
    hosts = lab.setup_hosts()
    assert all(h["changed"] == 0 for h in hosts.values()), hosts
    assert lab.on_nodes("wc -l < /var/tmp/init-runs") == runs


def test_failing_init_script_fails_provision_naming_the_node(lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "fail.sh"
    script.write_text(INIT_FAIL)
    res = lab.vca("provision", "1", "--role", "dev", "--init-script", str(script), check=False)
    assert res.returncode == 1, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("vca: error: setup of the new nodes failed on 1 of 1 hosts: "), last
    assert f"{lab.name}-5 (Fail where the init script failed: the init script failed (init_exit=3)" in last
    assert _init_state(lab) == {0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 3}
    assert lab.vca("logs", "--init", "5").stdout == "about to fail\n"
    status = lab.vca("status")
    assert f"the init script failed on {lab.name}-5" in status.stderr, status.stderr
    assert lab.on_nodes("wc -l < /var/tmp/init-runs", "0-4") == {i: "1" for i in range(5)}


def test_bad_init_script_changes_nothing(lab: Lab, tmp_path: Path) -> None:
    before = lab.vca("status", "--json").stdout
    stored = (lab.dir / "init-script").read_bytes()
    for path, words in ((tmp_path / "missing.sh", "init script not found: "), (tmp_path, "init script is not a file")):
        res = lab.vca("provision", "1", "--init-script", str(path), check=False)
        assert res.returncode == 2 and res.stderr.startswith("vca: error: " + words), res.stderr
        assert res.stderr.count("\n") == 1, res.stderr
    assert [r["index"] for r in json.loads(lab.vca("status", "--json").stdout)] == \
        [r["index"] for r in json.loads(before)]
    assert (lab.dir / "init-script").read_bytes() == stored
