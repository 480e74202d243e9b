"""The cost guard on lab nodes, with short durations: a node kept busy by a running job, by only a
detached child of a finished launch script, or by an open SSH terminal stays up; an idle node powers
itself off although `vca status` polls it every second, and `vca status` shows it stopped; at the
cluster's expiry a node with a running job runs vca-checkpoint, writes a line to the job's log and powers
off. One 3-node cluster for the module; the steps run in order on it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import host_leftovers, vca, wait_until

pytestmark = pytest.mark.lab

Shared = tuple[str, dict[str, str], Path]


@pytest.fixture(scope="module")
def shared(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    from conftest import module_lab_cluster

    home = tmp_path_factory.mktemp("guard-home")
    with module_lab_cluster(lab_dir, home, "gd", 3) as (c, env):
        yield c, env, lab_dir
    assert host_leftovers(c) == []


def sv(shared: Shared, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    c, env, _ = shared
    return vca("-c", c, *args, env=env, check=check)


def rows(shared: Shared) -> dict[int, dict[str, object]]:
    return {r["index"]: r for r in json.loads(sv(shared, "status", "--json").stdout)}


def package(root: Path, name: str, launch: str, checkpoint: str = "") -> Path:
    pkg = root / name
    pkg.mkdir()
    (pkg / "vcloud-launch").write_text("#!/bin/sh\n" + launch)
    (pkg / "vcloud-launch").chmod(0o755)
    if checkpoint:
        (pkg / "vca-checkpoint").write_text("#!/bin/sh\n" + checkpoint)
        (pkg / "vca-checkpoint").chmod(0o755)
    return pkg


def test_busy_nodes_stay_up_and_an_idle_one_powers_off(shared: Shared, tmp_path: Path) -> None:
    c, env, _ = shared
    job = package(tmp_path, "job", "exec sleep 600\n")
    detach = package(tmp_path, "detach", "setsid nohup sleep 600 >/dev/null 2>&1 </dev/null &\necho detached\n")
    sv(shared, "inject", str(job), "--node", "0")
    sv(shared, "inject", str(detach), "--node", "1")
    ssh_config = Path(env["VCA_HOME"]) / "clusters" / c / "ssh_config"
    # an open interactive session on node 2 (a terminal), held by this test
    term = subprocess.Popen(["ssh", "-F", str(ssh_config), "-tt", f"{c}-2", "sleep 120"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until("node 1's launch script ended", lambda: str(rows(shared)[1].get("job")).startswith("exited"), 20,
                   interval=1)
        res = json.loads(sv(shared, "guard", "--idle-stop", "6s", "--interval", "1", "--json").stdout)
        assert res["settings"]["idle_stop"] == 6 and sorted(res["nodes"]) == [f"{c}-{i}" for i in range(3)]
        conf = sv(shared, "connect", "2", "--", "cat /etc/vca/guard.conf").stdout
        assert "idle_stop=6" in conf and "interval=1" in conf  # seen from the node
        time.sleep(10)  # well past the idle limit: every node is busy with something
        now = rows(shared)
        assert [now[i]["state"] for i in range(3)] == ["up"] * 3, now
        busy = {i: now[i]["guard"]["busy"] for i in range(3)}  # type: ignore[index]
        assert busy == {0: "job", 1: "job process", 2: "ssh"}, busy
    finally:
        term.kill()
        term.wait()
    # node 2 is idle now; `vca status` every second (short probes) does not keep it up
    took = wait_until("node 2 powered off", lambda: rows(shared)[2]["state"] == "stopped", 30, interval=1)
    assert took < 20
    now = rows(shared)
    assert now[0]["state"] == "up" and now[1]["state"] == "up", now
    table = sv(shared, "status").stdout
    assert "stopped" in table and "busy (job)" in table


def test_expiry_checkpoints_a_running_job_then_powers_off(shared: Shared, tmp_path: Path) -> None:
    c, _, lab = shared
    pkg = package(tmp_path, "ckpt", "echo working\nexec sleep 600\n",
                  'date +%s > checkpoint.txt\necho "reason=$VCA_CHECKPOINT_REASON deadline=$VCA_CHECKPOINT_DEADLINE'
                  ' node=$VCA_NODE_INDEX" >> checkpoint.txt\necho checkpoint.txt\n')
    sv(shared, "inject", str(pkg), "--node", "0", "--restart")
    res = json.loads(sv(shared, "guard", "--lifetime", "+4s", "--idle-stop", "0", "--json").stdout)
    assert res["settings"]["expires_at"] > time.time() - 5
    # bounded by the guard's own limits: its look interval, the 60 s it leaves a freshly booted node
    # before acting on expiry, and the checkpoint's 120 s at most (this one takes a moment)
    wait_until("nodes 0 and 1 powered off", lambda: [rows(shared)[i]["state"] for i in (0, 1)] == ["stopped"] * 2, 150,
               interval=1)
    # the node's disk, read from the host: the checkpoint ran in the job's release, the log says why
    release = next((lab / "nodes" / f"{c}-0" / "upper" / "root" / "vca" / "releases").glob("*/checkpoint.txt"))
    lines = release.read_text().splitlines()
    assert lines[1].startswith("reason=expiry deadline=") and lines[1].endswith("node=0"), lines
    log = (release.parent / "vca-job-0.log").read_text()
    assert "working" in log and "lifetime ended" in log and "running vca-checkpoint, then powering off" in log
    # power on again: the guard still sees the cluster expired, and says so, unless the lifetime changes
    sv(shared, "guard", "--lifetime", "0")  # only the running node (none) gets it; the record keeps it
    sv(shared, "power", "on", "--node", "0")
    time.sleep(3)
    g = rows(shared)[0]
    assert g["state"] == "up" and g["guard"]["expires_at"] == 0, g  # type: ignore[index]


IMDS_STAND_IN = r'''
import http.server, json, os, time

class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):  # IMDSv2: a session token first
        ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self.reply(200, b"stand-in-token") if ok else self.reply(400)

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != "stand-in-token":
            return self.reply(401)
        if self.path == "/latest/meta-data/spot/instance-action" and os.path.exists("/tmp/notice"):
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.stat("/tmp/notice").st_mtime + 120))
            return self.reply(200, json.dumps({"action": "terminate", "time": at}).encode())
        self.reply(404)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", 18080), Handler).serve_forever()
'''


def test_spot_notice_checkpoints_uploads_and_shows_interrupted(shared: Shared, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A metadata stand-in on node 0's own loopback announces the interruption: the guard runs
    vca-checkpoint, uploads what it named to the cluster's bucket (moto on the bridge's host address,
    through a presigned URL: the node holds no credentials) and `vca status` shows it interrupted."""
    import tarfile

    import boto3
    from moto_fixtures import aws_env, start_moto

    from vcloud_ansible.lab.config import LabConfig

    c, env, _ = shared
    for k in ("VCA_LAB_BRIDGE", "VCA_LAB_SUBNET", "VCA_LAB_DIR"):
        monkeypatch.setenv(k, env[k])
    gateway = LabConfig.from_env().gateway
    server = start_moto(tmp_path / "moto", ami_validation=False, host=gateway)
    try:
        aws = {**aws_env(server.url, tmp_path), "NO_PROXY": f"127.0.0.1,localhost,{gateway}"}
        aws["no_proxy"] = aws["NO_PROXY"]
        s3 = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
            "s3", region_name="us-east-1", endpoint_url=server.url)
        s3.create_bucket(Bucket="ckpts")
        group_vars = Path(env["VCA_HOME"]) / "clusters" / c / "group_vars"
        group_vars.mkdir(exist_ok=True)
        (group_vars / "all.yml").write_text("vca_data_bucket: ckpts\n")
        pkg = package(tmp_path, "spot", "exec sleep 600\n",
                      'date +%s > ckpt.txt\necho "$VCA_CHECKPOINT_REASON $VCA_CHECKPOINT_DEADLINE" >> ckpt.txt\n'
                      'echo ckpt.txt\n')
        (tmp_path / "imds.py").write_text(IMDS_STAND_IN)
        sv(shared, "inject", str(pkg), "--node", "0", "--restart")
        sv(shared, "put", str(tmp_path / "imds.py"), "/tmp/imds.py", "--node", "0")
        sv(shared, "connect", "0", "--", "setsid nohup python3 /tmp/imds.py >/dev/null 2>&1 </dev/null &")
        res = vca("-c", c, "guard", "--imds", "http://127.0.0.1:18080", "--spot-watch", "on", "--interval", "1",
                  env={**env, **aws})
        assert "set on 1 node" in res.stderr, res.stderr
        sv(shared, "connect", "0", "--", "touch /tmp/notice")
        notice = int(sv(shared, "connect", "0", "--", "stat -c %Y /tmp/notice").stdout)
        seen: list[dict[str, object]] = []

        def interrupted() -> bool:  # a probe may time out on a loaded machine: no guard in that row
            seen.append(rows(shared)[0])
            return seen[-1].get("guard", {}).get("state") == "interrupted"  # type: ignore[attr-defined]

        try:
            wait_until("node 0 interrupted", interrupted, 60, interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {seen[-1:]}") from None
        g = seen[-1]["guard"]
        assert g["interrupted"] - notice <= 10 and g["checkpoint"] == "0", g  # type: ignore[index]
        body = s3.get_object(Bucket="ckpts", Key=f"{c}/checkpoints/{c}-0.tar.gz")["Body"].read()
        (tmp_path / "ckpt.tar.gz").write_bytes(body)
        with tarfile.open(tmp_path / "ckpt.tar.gz") as tar:
            f = tar.extractfile("ckpt.txt")
            assert f is not None
            ran, why = f.read().decode().splitlines()
        assert 0 <= int(ran) - notice <= 10 and why.split()[0] == "spot", (ran, why)
        assert int(why.split()[1]) <= notice + 120  # the deadline: the notice's time, less a margin
        assert "interrupted" in sv(shared, "status").stdout
    finally:
        server.stop()
