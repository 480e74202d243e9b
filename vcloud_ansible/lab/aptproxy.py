"""apt-cacher-ng bound on the bridge's host address, so that roles can install Debian packages on
nodes that have no route off the machine. Its Debian backends come from the host's apt sources."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..errors import LabError
from .hostinfo import apt_sources
from .procs import alive, read_pid, send, wait_gone


def _pidfile(root: Path) -> Path:
    return root / "apt-proxy" / "pid"


def running_pid(root: Path) -> int | None:
    pid = read_pid(_pidfile(root))
    if pid is None or not alive(pid):
        return None
    try:  # the PID may have been reused since: it must still be apt-cacher-ng
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    return pid if comm.startswith("apt-cacher") else None


def ensure(root: Path, address: str, port: int, timeout: float = 10.0) -> None:
    if running_pid(root):
        return
    base = root / "apt-proxy"
    conf = base / "conf"
    if conf.exists():
        shutil.rmtree(conf)
    shutil.copytree("/etc/apt-cacher-ng", conf)
    debian = [s.uri.rstrip("/") + "/" for s in apt_sources() if "security" not in s.uri]
    (conf / "backends_debian").write_text("\n".join(dict.fromkeys(debian)) + "\n")
    for sub in ("cache", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    with open(base / "log" / "daemon.out", "ab") as log:
        proc = subprocess.Popen(
            ["apt-cacher-ng", "-c", str(conf), "ForeGround=1", f"BindAddress={address}", f"Port={port}",
             f"CacheDir={base / 'cache'}", f"LogDir={base / 'log'}", f"SocketPath={base / 'socket'}",
             "PidFile=", "ExThreshold=14"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd="/",
        )
    _pidfile(root).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the lab's apt proxy (apt-cacher-ng) exited with {proc.returncode}",
                           f"see {base / 'log'}")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise LabError(f"the lab's apt proxy did not listen on {address}:{port} within {timeout:.0f} s")


def stop(root: Path) -> None:
    pid = running_pid(root)
    if pid is not None:
        send(pid, signal.SIGTERM)
        if wait_gone([pid], 3.0):
            send(pid, signal.SIGKILL)
            wait_gone([pid], 2.0)
    _pidfile(root).unlink(missing_ok=True)
