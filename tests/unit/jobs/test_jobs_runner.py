"""The node-side runner against a small S3 stand-in (POST uploads, a listing), on this machine: what it
uploads, the manifest, read-back, retries through an outage, giving up, the timeout and exit codes."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vcloud_ansible.jobs import runner


class FakeS3(http.server.ThreadingHTTPServer):
    objects: dict[str, bytes]
    fail_next: int  # answer this many requests with 503 first
    requests: int


class Handler(http.server.BaseHTTPRequestHandler):
    server: FakeS3

    def log_message(self, *args: Any) -> None:
        pass

    def _fail(self) -> bool:
        self.server.requests += 1
        if self.server.fail_next > 0:
            self.server.fail_next -= 1
            self.send_response(503)
            self.end_headers()
            return True
        return False

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self._fail():
            return
        boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
        fields: dict[str, bytes] = {}
        for part in body.split(b"--" + boundary)[1:-1]:
            head, _, data = part.partition(b"\r\n\r\n")
            name = head.split(b'name="')[1].split(b'"')[0].decode()
            fields[name] = data[:-2]
        self.server.objects[fields["key"].decode()] = fields["file"]
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:
        if self._fail():
            return
        prefix = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["prefix"][0]
        items = "".join(
            f"<Contents><Key>{urllib.parse.quote(k)}</Key><Size>{len(v)}</Size>"
            f"<ETag>&quot;{hashlib.md5(v).hexdigest()}&quot;</ETag></Contents>"
            for k, v in sorted(self.server.objects.items()) if k.startswith(prefix))
        doc = f'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{items}</ListBucketResult>'
        self.send_response(200)
        self.end_headers()
        self.wfile.write(doc.encode())


@pytest.fixture
def s3() -> Iterator[FakeS3]:
    server = FakeS3(("127.0.0.1", 0), Handler)
    server.objects, server.fail_next, server.requests = {}, 0, 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()


def spec(s3: FakeS3, **extra: Any) -> dict[str, Any]:
    url = f"http://127.0.0.1:{s3.server_address[1]}/bkt"
    return {"job": "j1", "index": 4, "attempt": 2, "command": "true", "env": {"MODE": "x"}, "timeout": None,
            "files": [], "setup": None, "poweroff_command": ["true"], "upload_seconds": 30,
            "post": {"url": url, "fields": {"policy": "p"}}, "list_url": f"{url}?list-type=2&prefix=arr/j1/",
            "prefix": "arr/j1/", **extra}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(runner, "BACKOFF_FIRST", 0.05)
    monkeypatch.setattr(runner, "BACKOFF_CAP", 0.2)
    monkeypatch.setattr(runner, "STATE_SECONDS", 0.2)
    w = tmp_path / "release"
    w.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(w)
    return w


def test_uploads_outputs_and_manifest_last(s3: FakeS3, work: Path) -> None:
    (work / "setup.sh").write_text("echo set >> setup-ran\n")
    cmd = ('mkdir -p results/sub; echo "$VCA_JOB_NAME $VCA_JOB_INDEX $VCA_JOB_ATTEMPT $MODE" > results/sub/o.txt; '
           'echo out; echo err >&2; exit 3')
    assert runner.run(spec(s3, command=cmd, setup="setup.sh")) == 0
    objs = s3.objects
    assert objs["arr/j1/results/sub/o.txt"] == b"j1 4 2 x\n"
    assert objs["arr/j1/stdout"] == b"out\n" and objs["arr/j1/stderr"] == b"err\n"
    result = json.loads(objs["arr/j1/result.json"])
    assert result["exit_code"] == 3 and result["attempt"] == 2 and result["ended_at"] >= result["started_at"]
    manifest = json.loads(objs["arr/j1/manifest.json"])
    assert sorted(manifest["files"]) == ["result.json", "results/sub/o.txt", "stderr", "stdout"]
    for rel, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256(objs[f"arr/j1/{rel}"]).hexdigest()
    assert json.loads(objs["arr/j1/.vca/state.json"])["state"] == "done"
    assert (work / "setup-ran").read_text() == "set\n"
    assert runner.run(spec(s3, setup="setup.sh")) == 0  # the setup script ran once on this node
    assert (work / "setup-ran").read_text() == "set\n"


def test_named_files_and_timeout(s3: FakeS3, work: Path) -> None:
    cmd = "echo a > a.log; echo b > b.log; mkdir -p results; echo r > results/r; sleep 30"
    assert runner.run(spec(s3, command=cmd, timeout=1, files=["*.log"])) == 0
    assert sorted(json.loads(s3.objects["arr/j1/manifest.json"])["files"]) == [
        "a.log", "b.log", "result.json", "stderr", "stdout"]
    result = json.loads(s3.objects["arr/j1/result.json"])
    assert result["exit_code"] == 124 and result["timed_out"]


def test_outage_is_retried_then_nothing_lost(s3: FakeS3, work: Path) -> None:
    s3.fail_next = 8  # the state write gives up; the uploads wait it out with backoff
    assert runner.run(spec(s3, command="mkdir results; echo x > results/x")) == 0
    assert s3.objects["arr/j1/results/x"] == b"x\n" and "arr/j1/manifest.json" in s3.objects


def test_gives_up_without_powering_off(s3: FakeS3, work: Path, tmp_path: Path) -> None:
    s3.fail_next = 10_000
    marker = tmp_path / "powered-off"
    assert runner.run(spec(s3, upload_seconds=1, poweroff_command=["touch", str(marker)])) == 1
    assert "arr/j1/manifest.json" not in s3.objects and not marker.exists()
    assert (tmp_path / "home/vca-job/upload-failed").exists()


def test_main_reads_the_spec_the_control_machine_sent(s3: FakeS3, work: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCA_JOB_ATTEMPT", "2")
    assert runner.main() == 2  # no spec: nothing runs
    path = runner.spec_path("2")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec(s3, command="echo via-file")))
    assert runner.main() == 0 and s3.objects["arr/j1/stdout"] == b"via-file\n"
