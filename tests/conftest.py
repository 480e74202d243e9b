"""Shared fixtures. Every test gets its own VCA_HOME; lab tests get their own bridge, subnet and lab
folder so they never touch a user's lab, and every node they make is removed even when they fail."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = bool(os.environ.get("CI"))
REPO = Path(__file__).resolve().parent.parent
LAB_TOOLS = ("systemd-nspawn", "mmdebstrap", "ip", "ssh", "apt-cacher-ng")

_NET_LOCKS: list[int] = []  # held for the whole session: the network is this session's alone


def _free_test_network() -> dict[str, str]:
    """The session's own lab network: a bridge and a /24 no other interface on this host uses, so
    that test sessions running side by side (and a user's lab) never share addresses. A lock file per
    network claims it at once: two sessions starting together would both see it unused."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
    for third in range(200, 250):
        if f" 10.213.{third}." in used:
            continue
        fd = os.open(lock_dir / f"vca-test-lab-{third}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _NET_LOCKS.append(fd)
        return {"VCA_LAB_BRIDGE": f"vcat{third}", "VCA_LAB_SUBNET": f"10.213.{third}.0/24"}
    raise RuntimeError("no free 10.213.200-249.0/24 network for the test lab")


# The tests' own lab network (not the default one), on a bridge only this session uses.
TEST_LAB_ENV = _free_test_network() if shutil.which("ip") else {}


def lab_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    missing = [t for t in LAB_TOOLS if shutil.which(t) is None]
    return f"missing {', '.join(missing)}" if missing else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = lab_missing()
    if why is None or IN_CI:  # CI never skips: a missing lab there must fail loudly
        return
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"lab tests {why}"))


@pytest.fixture(autouse=True)
def vca_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("VCA_HOME", str(home))
    monkeypatch.delenv("VCA_CLUSTER", raising=False)
    return home


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("lab")
    yield d
    _wipe_lab(d)


@pytest.fixture
def lab_env(lab_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VCA_LAB_DIR", str(lab_dir))
    for k, v in TEST_LAB_ENV.items():
        monkeypatch.setenv(k, v)
    return lab_dir


@pytest.fixture
def cluster_name(lab_env: Path, vca_home: Path) -> Iterator[str]:
    """A fresh cluster name; whatever the test leaves of it in the lab is removed afterwards."""
    name = "t" + uuid.uuid4().hex[:6]
    yield name
    _destroy_lab_cluster(name, str(vca_home))


def _destroy_lab_cluster(name: str, owner: str) -> None:
    from vcloud_ansible.lab.manager import Lab

    Lab().destroy(name, owner)


def _wipe_lab(d: Path) -> None:
    """Session end: remove anything any test left behind in the test lab, then its bridge."""
    env = {**os.environ, "VCA_LAB_DIR": str(d), **TEST_LAB_ENV}
    code = (
        "from vcloud_ansible.lab.manager import Lab\n"
        "lab = Lab()\n"
        "for n in lab.registry.nodes():\n"
        "    lab.destroy(n.cluster, n.owner)\n"
    )
    if (d / "registry.json").exists():
        subprocess.run([sys.executable, "-c", code], env=env, check=False)



@contextlib.contextmanager
def module_lab_cluster(lab_dir: Path, home: Path, prefix: str, nodes: int) -> Iterator[tuple[str, dict[str, str]]]:
    """(cluster, env): a lab cluster of ``nodes`` nodes with its own VCA_HOME, for the tests of one
    module (set-up paid once); pass ``env`` to every vca call. Removed afterwards, also on failure."""
    from helpers import vca

    env = {"VCA_HOME": str(home), "VCA_LAB_DIR": str(lab_dir), **TEST_LAB_ENV}
    name = prefix + uuid.uuid4().hex[:6]
    try:
        vca("-c", name, "provision", str(nodes), env=env)
        yield name, env
    finally:
        with pytest.MonkeyPatch.context() as mp:  # the lab cleanup reads the environment
            for k, v in env.items():
                mp.setenv(k, v)
            _destroy_lab_cluster(name, str(home))
