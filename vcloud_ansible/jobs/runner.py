#!/usr/bin/env python3
"""The node side of a job array (shipped in every job's package as .vca-job/runner.py, started as the
package's vcloud-launch): once started the node needs nothing from the control machine.

1. runs the array's setup script once (``setup.done`` marks it), then the row's command in the release
   folder with the node contract plus VCA_JOB_NAME, VCA_JOB_INDEX, VCA_JOB_ATTEMPT, and the row's env;
2. uploads stdout, stderr, result.json (exit code, timings) and the files the row names (default:
   results/) to s3://BUCKET/ARRAY/JOB/ through a presigned POST policy limited to that prefix (the node
   holds no credentials), each retried with backoff;
3. reads the prefix back (a presigned listing: size and MD5 of every object) and checks it against what
   it sent, then uploads manifest.json (sha256 and size per file) and checks that too;
4. only then powers the node off (ec2: launched with shutdown behaviour terminate, so the instance ends;
   lab: the provider sees it down).
   When the upload keeps failing past its deadline the node stays ``hold_seconds`` (its outputs can be
   fetched by hand), then powers off all the same: a lab node keeps its disk, an EC2 instance terminates.
   An EC2 instance also carries vca:expires-at (its row's timeout plus a margin) for the expiry guard.

Progress goes to ARRAY/JOB/.vca/state.json (best effort: a status write never holds the job up).
Python 3 standard library only: a node has nothing else.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

HTTP_TIMEOUT = 20
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 10.0  # seconds between upload attempts: doubling, bounded
STATE_SECONDS = 5.0  # a progress write gives up after this long


def log(msg: str) -> None:
    print(f"vca-job: {time.strftime('%H:%M:%S')} {msg}", flush=True)


class Uploader:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.post = spec["post"]  # {"url": ..., "fields": {...}}
        self.list_url = spec["list_url"]
        self.prefix = spec["prefix"]  # ARRAY/JOB/

    def put(self, rel: str, data: bytes) -> None:
        boundary = uuid.uuid4().hex
        fields = {**self.post["fields"], "key": self.prefix + rel}
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="data"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data
                     + f"\r\n--{boundary}--\r\n".encode())
        req = urllib.request.Request(self.post["url"], data=b"".join(parts), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
            r.read()

    def listing(self) -> dict[str, tuple[int, str]]:
        """rel -> (size, etag) of every object below the prefix."""
        out: dict[str, tuple[int, str]] = {}
        with urllib.request.urlopen(self.list_url, timeout=HTTP_TIMEOUT) as r:
            root = ET.fromstring(r.read())
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        for c in root.iter(f"{ns}Contents"):
            key = urllib.parse.unquote(c.findtext(f"{ns}Key") or "")
            out[key[len(self.prefix):]] = (int(c.findtext(f"{ns}Size") or -1),
                                           (c.findtext(f"{ns}ETag") or "").strip('"'))
        return out


def with_retries(what: str, fn: Any, deadline: float) -> Any:
    """fn() until it succeeds; backoff doubling from BACKOFF_FIRST to BACKOFF_CAP seconds; raises at
    ``deadline``."""
    delay, cap = BACKOFF_FIRST, BACKOFF_CAP
    while True:
        try:
            return fn()
        except (OSError, urllib.error.URLError, ET.ParseError, ValueError) as exc:
            if time.time() + delay > deadline:
                raise
            log(f"{what} failed ({exc}); again in {delay:.0f} s")
            time.sleep(delay)
            delay = min(cap, delay * 2)


def run(spec: dict[str, Any]) -> int:
    up = Uploader(spec)
    home = Path(os.environ.get("HOME", "/root")) / "vca-job"
    home.mkdir(parents=True, exist_ok=True)
    attempt = int(spec["attempt"])
    work = Path.cwd()  # the release folder
    node = socket.gethostname()

    def state(name: str, **extra: Any) -> None:
        doc = {"state": name, "attempt": attempt, "node": node, "at": time.time(), **extra}
        try:  # best effort, bounded: progress must never hold the job up
            with_retries("state", lambda: up.put(".vca/state.json", json.dumps(doc).encode()),
                         time.time() + STATE_SECONDS)
        except Exception as exc:
            log(f"state {name} not recorded: {exc}")

    env = dict(os.environ)
    env.update({"VCA_JOB_NAME": spec["job"], "VCA_JOB_INDEX": str(spec["index"]),
                "VCA_JOB_ATTEMPT": str(attempt), **spec.get("env", {})})
    result: dict[str, Any] = {"job": spec["job"], "index": spec["index"], "attempt": attempt, "node": node,
                              "instance_type": spec.get("instance_type", ""), "command": spec["command"]}
    setup = spec.get("setup")
    result["setup_started_at"] = time.time()
    if setup and not (home / "setup.done").exists():
        state("setting up")
        with open(home / "setup.log", "wb") as out:
            rc = subprocess.call(["/bin/bash", str(work / setup)], cwd=work, env=env, stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if rc != 0:
            result["setup_exit"] = rc
        else:
            (home / "setup.done").write_text("ok\n")
    result["setup_ended_at"] = time.time()
    out_path, err_path = home / f"stdout.{attempt}", home / f"stderr.{attempt}"
    if "setup_exit" in result:
        code = int(result["setup_exit"])
        out_path.write_bytes(b"")
        err_path.write_bytes((home / "setup.log").read_bytes())
        result["started_at"] = result["ended_at"] = time.time()
    else:
        state("running")
        result["started_at"] = time.time()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(["/bin/bash", "-c", spec["command"]], cwd=work, env=env, stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
            timeout = spec.get("timeout")
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                code = 124  # as timeout(1) says it
                result["timed_out"] = True
        result["ended_at"] = time.time()
        if code < 0:
            code = 128 - code
    result["exit_code"] = code
    log(f"command exited {code}")
    state("uploading", exit_code=code)
    deadline = time.time() + float(spec.get("upload_seconds", 900))
    files: dict[str, Path] = {"stdout": out_path, "stderr": err_path}
    patterns = spec.get("files") or ["results"]
    for pat in patterns:
        for match in sorted(glob.glob(str(work / pat), recursive=True)):
            p = Path(match)
            for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
                if f.is_file() and not f.is_symlink():
                    rel = f.relative_to(work).as_posix()
                    if rel not in ("stdout", "stderr", "result.json", "manifest.json") and not rel.startswith(".vca"):
                        files[rel] = f
    try:
        upload(up, files, result, deadline)
    except Exception as exc:
        log(f"upload gave up: {exc}; the node stays for its expiry guard")
        (home / "upload-failed").write_text(str(exc) + "\n")
        hold = spec.get("hold_seconds")
        if hold is not None:  # lab: powered off after a while, its disk (and the outputs) kept
            time.sleep(float(hold))
            subprocess.call(spec.get("poweroff_command") or ["systemctl", "poweroff"])
        return 1
    state("done", exit_code=code)
    log("uploaded and verified; powering off")
    if spec.get("poweroff", True):
        subprocess.call(spec.get("poweroff_command") or ["systemctl", "poweroff"])
    return 0


def upload(up: Uploader, files: dict[str, Path], result: dict[str, Any], deadline: float) -> None:
    result["uploaded_at"] = time.time()
    blobs: dict[str, bytes] = {rel: p.read_bytes() for rel, p in files.items()}
    blobs["result.json"] = (json.dumps(result, indent=1) + "\n").encode()
    sums = {rel: {"size": len(b), "sha256": hashlib.sha256(b).hexdigest(),
                  "md5": hashlib.md5(b).hexdigest()} for rel, b in blobs.items()}
    for rel, data in blobs.items():
        with_retries(f"upload of {rel}", lambda rel=rel, data=data: up.put(rel, data), deadline)
    verify(up, sums, deadline)
    manifest = {"format": "vca-job-manifest/1", "job": result["job"], "attempt": result["attempt"],
                "exit_code": result["exit_code"], "files": sums}
    body = (json.dumps(manifest, indent=1) + "\n").encode()
    with_retries("upload of manifest.json", lambda: up.put("manifest.json", body), deadline)
    verify(up, {"manifest.json": {"size": len(body), "md5": hashlib.md5(body).hexdigest()}},
           deadline)


def verify(up: Uploader, sums: dict[str, dict[str, Any]], deadline: float) -> None:
    def check() -> None:
        have = up.listing()
        for rel, s in sums.items():
            size, etag = have.get(rel, (-1, ""))
            if size != s["size"] or (len(etag) == 32 and etag != s["md5"]):
                raise ValueError(f"{rel} reads back as {size} bytes (etag {etag or '-'}), sent {s['size']}")

    with_retries("read-back", check, deadline)


def spec_path(attempt: str) -> Path:
    """Where the control machine put this attempt's spec (over SSH, mode 600): the presigned upload
    policy in it never passes through the job's environment nor vca's records."""
    return Path(os.environ.get("HOME", "/root")) / "vca-job" / f"spec-{attempt}.json"


def main() -> int:
    path = spec_path(os.environ.get("VCA_JOB_ATTEMPT", ""))
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"vca-job: no job spec at {path}: {exc}", file=sys.stderr)
        return 2
    return run(spec)


if __name__ == "__main__":
    sys.exit(main())
