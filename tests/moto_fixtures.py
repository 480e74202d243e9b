"""A real moto server process as the EC2 endpoint, and lab nodes standing in for its instances.

Network safety: every AWS variable points at moto on 127.0.0.1 with fake keys; the instance metadata
service is off; HTTP(S) proxies point at a closed local port so that anything not bound for loopback
fails at once instead of reaching a real endpoint. Addresses moto hands out are never contacted: SSH
goes to the lab node named by each instance's vca:ssh_host tag.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# moto's own AMIs (moto/ec2/resources/amis.json): Amazon Linux 2, x86_64, root device /dev/xvda.
AMI = "ami-04681a1dbd79675a5"
AMI_NAME = "amzn2-ami-hvm-2.0.20180810-x86_64-gp2"
REGION = "us-east-1"
# The fake secret key: unique, so that a test can prove it was stored nowhere.
SECRET_KEY = "vca-test-secret-never-stored"
PROXY_TRAP = "http://127.0.0.1:9"  # discard port: nothing listens, every proxied request fails
STANDIN_AGENT = "vca-test-standin"  # user-agent marker of the stand-in watcher's own EC2 calls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def aws_env(endpoint: str, home: Path) -> dict[str, str]:
    """Environment for boto3, Ansible and vca: moto only, fake keys, no metadata service, proxy trap."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        # A developer's ~/.aws must not leak in: no profile, no shared files.
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "HTTP_PROXY": PROXY_TRAP,
        "HTTPS_PROXY": PROXY_TRAP,
        "http_proxy": PROXY_TRAP,
        "https_proxy": PROXY_TRAP,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


AWS_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE",
             "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
             "AWS_CONTAINER_CREDENTIALS_FULL_URI")


@dataclass
class MotoServer:
    """One moto server process (on 127.0.0.1 unless told otherwise), recording every request."""

    port: int
    proc: subprocess.Popen[bytes]
    recording: Path
    log: Path
    host: str = "127.0.0.1"  # the lab bridge's host address when lab nodes must reach it

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _post(self, path: str) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request("POST", path)
            conn.getresponse().read()
        finally:
            conn.close()

    def reset(self) -> None:
        """Forget every resource and every recorded request."""
        self._post("/moto-api/reset")
        self.reset_calls()

    def reset_calls(self) -> None:
        self._post("/moto-api/recorder/reset-recording")

    def calls(self, exclude_agent: str = STANDIN_AGENT) -> collections.Counter[str]:
        """API calls since the last reset, by action (EC2's Action=..., or the JSON target)."""
        counts: collections.Counter[str] = collections.Counter()
        if not self.recording.exists():
            return counts
        for line in self.recording.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
            if exclude_agent and exclude_agent in headers.get("user-agent", ""):
                continue
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode(errors="replace")
            action = urllib.parse.parse_qs(body).get("Action", [""])[0] or headers.get("x-amz-target", "")
            counts[action or str(entry.get("url"))] += 1
        return counts

    def ec2(self, region: str = REGION, agent: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
            "ec2", region_name=region, endpoint_url=self.url,
            config=Config(user_agent_extra=agent or "", proxies={}),
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_moto(folder: Path, ami_validation: bool = True, host: str = "127.0.0.1") -> MotoServer:
    """Start ``python -m moto.server`` on a free port of ``host`` (loopback, or the address of a lab
    bridge this run created) and wait until it answers."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    recording, log = folder / "moto-recording.jsonl", folder / "moto.log"
    env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)}
    if ami_validation:
        env["MOTO_ENABLE_AMI_VALIDATION"] = "true"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = MotoServer(port, proc, recording, log, host)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=0.5).close()
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("moto server did not start within 30 s")


def moto_missing() -> str | None:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return "moto[server] is not installed"
    return None


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    why = moto_missing()
    if why and not os.environ.get("CI"):
        pytest.skip(why)
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoServer:
    """A clean moto (no resources, no recorded calls) and an environment that reaches only it."""
    moto_server.reset()
    for name in AWS_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_env(moto_server.url, tmp_path).items():
        monkeypatch.setenv(name, value)
    return moto_server


# -- lab stand-ins ----------------------------------------------------------------------------------


@dataclass
class StandIns:
    """Watches moto for live instances of ``cluster``; boots a lab node for each and tags the instance
    vca:ssh_host=<lab address>, as a port forwarder or bastion mapper would. A terminated instance's
    node is removed. The nodes accept the cluster's key for root."""

    moto: MotoServer
    cluster: str
    vca_home: Path
    lab_cluster: str
    owner: str
    by_instance: dict[str, int] = field(default_factory=dict)  # instance id -> lab node index
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> StandIns:
        self._thread = threading.Thread(target=self._run, name="standins", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        ec2 = self.moto.ec2(agent=STANDIN_AGENT)
        while not self._stop.is_set():
            try:
                self._round(ec2)
            except BaseException as exc:  # reported by check(); the watcher keeps going
                self.errors.append(exc)
            self._stop.wait(0.3)

    def _round(self, ec2: Any) -> None:
        from vcloud_ansible.lab.manager import Lab

        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:vca:cluster", "Values": [self.cluster]}])
        instances = [i for p in pages for r in p["Reservations"] for i in r["Instances"]]
        live = {i["InstanceId"]: i for i in instances if i["State"]["Name"] in ("pending", "running")}
        # A stopped instance's node is powered off with its disk kept, and on again when it starts.
        stopped = {i["InstanceId"] for i in instances if i["State"]["Name"] in ("stopping", "stopped")}
        lab = Lab()
        off = [self.by_instance[iid] for iid in stopped if iid in self.by_instance]
        if off:
            lab.power_off(self.lab_cluster, self.owner, off)
        on = [self.by_instance[iid] for iid in live if iid in self.by_instance]
        if on and any(n.stopped for n in lab.nodes(self.lab_cluster) if n.index in on):
            lab.power_on(self.lab_cluster, self.owner, on)
        gone = [iid for iid in self.by_instance if iid not in live and iid not in stopped]
        if gone:
            Lab().destroy(self.lab_cluster, self.owner, [self.by_instance.pop(iid) for iid in gone])
        todo = [iid for iid in live if iid not in self.by_instance]
        pub = self.vca_home / "clusters" / self.cluster / "id_ed25519.pub"
        if not todo or not pub.exists():
            return
        made = Lab().create(self.lab_cluster, len(todo), pub.read_text().strip(), self.owner)
        for iid, (node, _key) in zip(todo, made, strict=True):
            self.by_instance[iid] = node.index
            ec2.create_tags(Resources=[iid], Tags=[{"Key": "vca:ssh_host", "Value": node.ip}])

    def check(self) -> None:
        if self.errors:
            raise AssertionError(f"stand-in watcher failed: {self.errors[0]!r}") from self.errors[0]

    def stop(self) -> None:
        from vcloud_ansible.lab.manager import Lab

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        Lab().destroy(self.lab_cluster, self.owner)


@pytest.fixture
def standins(moto: MotoServer, cluster_name: str, vca_home: Path) -> Iterator[StandIns]:
    """Lab nodes for the instances of ``cluster_name``; all removed afterwards, also on failure."""
    s = StandIns(moto, cluster_name, vca_home, lab_cluster=cluster_name + "s", owner=f"standin:{vca_home}")
    s.start()
    try:
        yield s
    finally:
        s.stop()
