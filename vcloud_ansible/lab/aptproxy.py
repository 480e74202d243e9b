"""apt-cacher-ng bound on the bridge's host address, so that roles can install Debian packages on
nodes that have no route off the machine. Its Debian backends come from the host's apt sources.

Two defects made a node's `apt-get update` hang for good on the first parallel use after the proxy
started; the lab works around both:

- apt-cacher-ng 3.7 (Debian 12) compares a volatile file's cache item (InRelease...) against
  ``start time + ResponseFreezeDetectTime`` to decide that it is stuck, and the start time stays 0 until
  the upstream answer arrives. A second client asking for the same file before then (several nodes
  updating at once, while a fresh proxy still resolves and connects upstream) displaces the first
  client's item: that client gets the response headers and then a closed connection, or a 503 "Error
  with cache data" ("Failure to move file ... out of the way ... File exists" in apt-cacher.err).
  A freeze detection time beyond the epoch clock lets concurrent requests share the item, as they
  always do for static files.
- apt 2.6 (Debian 12) schedules the retry of such a transient failure with a delay, queues it behind
  items without one, and its run loop then never wakes for it (Launchpad bug 2003851, fixed in apt
  3.1.3): apt waits forever with no connection open. Nodes retry at once instead, with a network
  timeout (``node_apt_conf``).
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..errors import LabError
from .hostinfo import AptSource, apt_sources
from .procs import alive, read_pid, send, wait_gone

# Beyond the Unix clock (until 2038: the largest value the int option takes), so that an item whose
# download has not started is never taken for a stuck one (see the module's note).
FREEZE_DETECT_SECONDS = 2**31 - 1

# What the lab sets on apt-cacher-ng's command line, besides its paths and address.
PROXY_OPTIONS = {
    "ForeGround": "1",
    "PidFile": "",
    "ExThreshold": "14",
    "ResponseFreezeDetectTime": str(FREEZE_DETECT_SECONDS),
}

# Seconds a node's apt waits on a silent connection before it gives up and retries.
NODE_APT_TIMEOUT = 20
NODE_APT_RETRIES = 5

# The security archive's backends, from the host's apt sources (see write_config).
SECURITY_BACKENDS = "backends_debian_security"


def node_apt_conf(proxy_url: str) -> str:
    """The apt settings every lab node gets (/etc/apt/apt.conf.d/01vca-proxy)."""
    return (
        "// Written by vca: this lab node reaches Debian's packages only through the lab's apt proxy.\n"
        f'Acquire::http::Proxy "{proxy_url}";\n'
        "// A connection silent this long is dropped and the file fetched again.\n"
        f'Acquire::http::Timeout "{NODE_APT_TIMEOUT}";\n'
        f'Acquire::Retries "{NODE_APT_RETRIES}";\n'
        "// Retry at once: apt 2.6 can wait forever on a delayed retry when the other suites' files\n"
        "// arrived (Launchpad bug 2003851, fixed in apt 3.1.3).\n"
        'Acquire::Retries::Delay "false";\n'
    )


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


def _is_security(source: AptSource) -> bool:
    return "security" in source.uri


def _backend(uri: str) -> str:
    return uri.rstrip("/") + "/"


def write_config(conf: Path, sources: list[AptSource], template: Path = Path("/etc/apt-cacher-ng")) -> None:
    """The proxy's configuration folder: the host's apt-cacher-ng configuration, with the Debian
    archive's and the security archive's backends taken from the host's apt sources (the security
    remapping otherwise falls back on a list of hosts built into apt-cacher-ng)."""
    if conf.exists():
        shutil.rmtree(conf)
    shutil.copytree(template, conf)
    debian = [_backend(s.uri) for s in sources if not _is_security(s)]
    security = [_backend(s.uri) for s in sources if _is_security(s)]
    (conf / "backends_debian").write_text("\n".join(dict.fromkeys(debian)) + "\n")
    if not security:
        return
    (conf / SECURITY_BACKENDS).write_text("\n".join(dict.fromkeys(security)) + "\n")
    main = conf / "acng.conf"
    text = main.read_text() if main.exists() else ""
    main.write_text(_remap_security(text, security))


def _remap_security(acng_conf: str, security: list[str]) -> str:
    """Point the ``Remap-secdeb`` rule at the host's security mirrors. The URLs it matches stay those
    of the host's configuration, plus the host's own security URIs (the nodes' sources)."""
    ours = [re.sub(r"^[a-z]+://", "", uri).rstrip("/") for uri in security]
    pattern = re.compile(r"^Remap-secdeb:(?P<rule>.*)$", re.M)
    m = pattern.search(acng_conf)
    matched = m.group("rule").split("#", 1)[0].split(";", 1)[0].split() if m else []
    line = f"Remap-secdeb: {' '.join(dict.fromkeys(matched + ours))} ; file:{SECURITY_BACKENDS}"
    if m is None:
        return acng_conf.rstrip("\n") + "\n" + line + "\n"
    return acng_conf[:m.start()] + line + acng_conf[m.end():]


def command(conf: Path, base: Path, address: str, port: int) -> list[str]:
    options = {
        **PROXY_OPTIONS, "BindAddress": address, "Port": str(port), "CacheDir": str(base / "cache"),
        "LogDir": str(base / "log"), "SocketPath": str(base / "socket"),
    }
    return ["apt-cacher-ng", "-c", str(conf), *(f"{k}={v}" for k, v in options.items())]


def ensure(root: Path, address: str, port: int, timeout: float = 10.0) -> None:
    if running_pid(root):
        return
    base = root / "apt-proxy"
    conf = base / "conf"
    write_config(conf, apt_sources())
    for sub in ("cache", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    with open(base / "log" / "daemon.out", "ab") as log:
        proc = subprocess.Popen(
            command(conf, base, address, port),
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
