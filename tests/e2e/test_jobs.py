"""Job arrays on lab nodes and a moto S3 (one array, several failures at once).

Five jobs, --max-parallel 2, --retries 1: one exits 3; one quoted command holds a comma and a newline;
one (d) hangs in its first attempt and its node is killed; the last one (e) ends while S3 is unreachable
(a proxy the test controls stands between the nodes and moto: moto's state would not survive a restart).
After `jobs run` returns nothing of the control machine runs until every job but d has finished and
uploaded, seen by `jobs status` from a fresh VCA_HOME; then `jobs wait` starts d again on a new node.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import vca

pytestmark = pytest.mark.lab

BUCKET = "job-results"


class Proxy:
    """A TCP forwarder on ``host``:``port`` to moto on 127.0.0.1, stopped and started again on the same
    port: an S3 outage the nodes see, with moto's state kept."""

    def __init__(self, host: str, target: int) -> None:
        self.host, self.target = host, target
        self.port = 0
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> Proxy:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self._sock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                self._sock.close()
                self._sock = None
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns.clear()

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                client, _ = s.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                with contextlib.suppress(OSError):
                    x.shutdown(socket.SHUT_RDWR)


def wait_until(check: Any, what: str, timeout: float) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = cur = 0
    for _, step in events:
        cur += step
        most = max(most, cur)
    return most


def test_job_array_end_to_end(lab_env: Path, vca_home: Path, tmp_path: Path) -> None:
    import boto3
    from conftest import TEST_LAB_ENV, module_lab_cluster
    from moto_fixtures import aws_env, start_moto

    from vcloud_ansible.lab.config import LabConfig
    from vcloud_ansible.lab.manager import Lab

    gateway = LabConfig.from_env().gateway
    name = "ja" + uuid.uuid4().hex[:6]
    # One idle node of another cluster keeps the lab bridge (and the proxy's address on it) up while
    # the array's nodes come and go.
    with module_lab_cluster(lab_env, tmp_path / "keeper-home", "keep", 1):
        moto = start_moto(tmp_path / "moto", ami_validation=False)
        proxy = Proxy(gateway, moto.port).start()
        env = {**aws_env(f"http://{gateway}:{proxy.port}", tmp_path), "VCA_HOME": str(vca_home),
               "VCA_LAB_DIR": str(lab_env), **TEST_LAB_ENV}
        env["NO_PROXY"] = env["no_proxy"] = f"127.0.0.1,localhost,{gateway}"
        direct = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="x").client(
            "s3", region_name="us-east-1", endpoint_url=moto.url)  # the test's own view, past the proxy
        try:
            direct.create_bucket(Bucket=BUCKET)
            _run_array(name, env, tmp_path, proxy, direct, Lab())
        finally:
            proxy.stop()
            moto.stop()
            with contextlib.suppress(Exception):
                vca("jobs", "cancel", name, env=env, check=False)


def _run_array(name: str, env: dict[str, str], tmp: Path, proxy: Proxy, s3: Any, lab: Any) -> None:
    pkg = tmp / "pkg"
    pkg.mkdir()
    (pkg / "data.txt").write_text("from the package\n")
    setup = tmp / "setup.sh"
    setup.write_text("echo ran >> /root/setup-count\n")
    csv = tmp / "jobs.csv"
    csv.write_text(
        "name,instance_type,command,env,files\n"
        'a,t3.micro,"mkdir -p results; echo ""$VCA_JOB_NAME $VCA_JOB_INDEX $VCA_JOB_ATTEMPT $GREETING $VCA_NUM_NODES"" '
        '> results/out.txt; cat data.txt /root/setup-count >> results/out.txt; sleep 2",GREETING=hi,\n'
        'b,t3.micro,"echo failing >&2; exit 3",,\n'
        'c,c5.large,"echo ""quoted, with a comma\nand a newline""; sleep 2",,\n'
        'd,t3.micro,"[ ""$VCA_JOB_ATTEMPT"" = 1 ] && sleep 300; echo d > d.txt",,d.txt\n'
        'e,t3.micro,"sleep 8; mkdir -p results/deep; head -c 200000 /dev/urandom > results/deep/blob.bin",,\n')
    started = time.time()
    res = vca("jobs", "run", str(csv), "--name", name, "--bucket", BUCKET, "--setup", str(setup), "--package",
              str(pkg), "--max-parallel", "2", "--retries", "1", env=env, timeout=240)
    assert f"job array '{name}': 5 jobs started" in res.stderr, res.stderr
    ran_for = time.time() - started

    # The control machine is gone from here on. S3 goes away while e runs, and d's node is killed.
    proxy.stop()
    outage_began = time.time()
    d_node = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{name}/d/.vca/launch-1.json")["Body"].read())["node"]
    killed = next(n for n in lab.nodes(name) if n.name == d_node)
    lab.destroy(name, env["VCA_HOME"], [killed.index])
    d_killed_at = time.time()
    time.sleep(max(0.0, outage_began + 12 - time.time()))
    proxy.start()
    outage_ended = time.time()

    t_outage = time.time()
    fresh = {**env, "VCA_HOME": str(tmp / "fresh-home")}

    def settled() -> dict[str, Any] | None:
        doc: dict[str, Any] = json.loads(vca("jobs", "status", name, "--bucket", BUCKET, "--json",
                                             env=fresh).stdout)
        states = {j["name"]: j["label"] for j in doc["jobs"]}
        return doc if states["e"] == "done(0)" and states["d"] == "lost" else None

    doc = wait_until(settled, "e to upload after the outage, from a fresh VCA_HOME", 90)
    assert {j["name"]: j["label"] for j in doc["jobs"]} == {
        "a": "done(0)", "b": "failed(3)", "c": "done(0)", "d": "lost", "e": "done(0)"}, doc
    assert not (tmp / "fresh-home" / "clusters").exists()  # reading made nothing there

    t_settled = time.time()
    # `jobs wait` retries d on a new node, removes the ended nodes, and says b failed.
    waited = vca("jobs", "wait", name, "--interval", "1", "--timeout", "120", env=env, check=False)
    assert waited.returncode == 1 and "b (failed(3))" in waited.stderr, waited.stderr
    assert "1 failed(3), 4 done(0)" in waited.stderr or "4 done(0), 1 failed(3)" in waited.stderr, waited.stderr
    t_waited = time.time()
    final = json.loads(vca("jobs", "status", name, "--json", env=env).stdout)
    assert final["counts"] == {"done(0)": 4, "failed(3)": 1}, final
    jobs = {j["name"]: j for j in final["jobs"]}
    assert jobs["d"]["attempt"] == 2 and jobs["d"]["node"] != d_node
    assert all(jobs[n]["attempt"] == 1 for n in "abce")
    assert lab.nodes(name) == []  # every job node removed itself (or was removed once it ended)

    # Every job's output and manifest is in S3, once; the manifest matches what is there.
    keys = {o["Key"]: o for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{name}/")["Contents"]}
    for job in "abcde":
        for rel in ("stdout", "stderr", "result.json", "manifest.json"):
            assert f"{name}/{job}/{rel}" in keys, (job, rel, sorted(keys))
        man = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{name}/{job}/manifest.json")["Body"].read())
        for rel, entry in man["files"].items():
            assert keys[f"{name}/{job}/{rel}"]["Size"] == entry["size"]
    result_d = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{name}/d/result.json")["Body"].read())
    assert result_d["attempt"] == 2 and result_d["exit_code"] == 0
    assert sorted(k for k in keys if k.startswith(f"{name}/d/") and "/.vca/" not in k) == [
        f"{name}/d/{r}" for r in ("d.txt", "manifest.json", "result.json", "stderr", "stdout")]
    # e's command ended during the outage; its upload finished after S3 came back.
    result_e = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{name}/e/result.json")["Body"].read())
    assert outage_began < result_e["ended_at"] < outage_ended, (outage_began, result_e, outage_ended)
    assert keys[f"{name}/e/manifest.json"]["LastModified"].timestamp() >= int(outage_ended)

    # --max-parallel 2: never more than two nodes at work, from the recorded times (node set-up to
    # upload; d's first attempt from its launch to its kill).
    spans = []
    for job in "abcde":
        r = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{name}/{job}/result.json")["Body"].read())
        spans.append((r["setup_started_at"], r["uploaded_at"]))
    d1 = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{name}/d/.vca/launch-1.json")["Body"].read())
    spans.append((d1["at"], d_killed_at))
    assert max_overlap(spans) == 2, spans

    # fetch: every file checked against its job's manifest, collect's layout and manifest.
    out = tmp / "out"
    fetched = vca("jobs", "fetch", name, str(out), env=env)
    assert "of 5 jobs" in fetched.stderr, fetched.stderr
    assert (out / "a/results/out.txt").read_text() == "a 0 1 hi 1\nfrom the package\nran\n"
    assert (out / "c/stdout").read_text() == "quoted, with a comma\nand a newline\n"
    assert (out / "b/stderr").read_text() == "failing\n"
    assert (out / "d/d.txt").read_text() == "d\n"
    assert (out / "e/results/deep/blob.bin").stat().st_size == 200000
    collect_manifest = json.loads((out / "vca-manifest.json").read_text())
    assert len(collect_manifest["files"]) == sum(
        len(json.loads((out / j / "manifest.json").read_text())["files"]) + 1 for j in "abcde")
    (out / "e/results/deep/blob.bin").write_bytes(b"changed")
    again = vca("jobs", "fetch", name, str(out), env=env, check=False)
    assert again.returncode != 0 and "exists with other content" in again.stderr, again.stderr

    # The nodes' presigned upload policies are bearer tokens: kept out of every file vca keeps here.
    for f in Path(env["VCA_HOME"]).rglob("*"):
        if f.is_file() and f.suffix in (".json", ".yml", ".txt", ""):
            text = f.read_bytes()
            assert b"x-amz-signature" not in text.lower() and b"x-amz-credential" not in text.lower(), f
    table = vca("jobs", "status", name, env=env)
    assert "failed(3)" in table.stdout and "4 done(0), 1 failed(3)" in table.stderr, table

    listed = vca("jobs", "list", "--json", env=env).stdout
    assert [a["name"] for a in json.loads(listed)] == [name]
    vca("jobs", "cancel", name, env=env)
    assert json.loads(vca("jobs", "list", "--json", env=env).stdout) == []
    print(f"jobs run returned after {ran_for:.1f} s; outage {outage_ended - outage_began:.1f} s; "
          f"settled {t_settled - t_outage:.1f} s after it; wait took {t_waited - t_settled:.1f} s")
