from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vcloud_ansible.errors import ClusterNotFound, UsageError
from vcloud_ansible.state import ClusterState, current_cluster_name, list_clusters, validate_name


@pytest.mark.parametrize("name", ["a", "default", "exp-1", "x" * 32, "0abc"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "has_underscore", "-lead", "trail-", "x" * 33, "a b", "ä"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(UsageError, match="invalid cluster name"):
        validate_name(name)


def test_cluster_name_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert current_cluster_name(None) == "default"
    monkeypatch.setenv("VCA_CLUSTER", "fromenv")
    assert current_cluster_name(None) == "fromenv"
    assert current_cluster_name("explicit") == "explicit"


def test_create_makes_private_files(vca_home: Path) -> None:
    st = ClusterState("c1")
    st.create("local", {"x": 1})
    assert stat.S_IMODE(vca_home.stat().st_mode) == 0o700
    assert stat.S_IMODE(st.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(st.key_path.stat().st_mode) == 0o600
    assert st.public_key().startswith("ssh-ed25519 ")
    assert stat.S_IMODE(st.record_path.stat().st_mode) == 0o600
    spec = st.load()
    assert (spec.name, spec.provider, spec.settings) == ("c1", "local", {"x": 1})
    key = st.key_path.read_text()
    st.create("local", {})  # again: the key pair is kept
    assert st.key_path.read_text() == key
    assert list_clusters() == ["c1"]
    assert not list(st.dir.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_unknown_cluster_names_known_ones(vca_home: Path) -> None:
    ClusterState("alpha").create("local", {})
    with pytest.raises(ClusterNotFound, match=r"unknown cluster 'beta' \(known: alpha\)"):
        ClusterState("beta").load()


def test_forget(vca_home: Path) -> None:
    st = ClusterState("gone")
    st.create("local", {})
    st.forget()
    assert not st.exists() and list_clusters() == []


def test_lock_waits_says_for_whom_then_fails(vca_home: Path) -> None:
    import subprocess
    import sys
    import time

    from vcloud_ansible.errors import VcaError

    state = ClusterState("locked", vca_home)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from vcloud_ansible.state import "
         "ClusterState\nwith ClusterState('locked', Path(sys.argv[1])).lock('inject'):\n print('held', flush=True)\n"
         " time.sleep(30)", str(vca_home)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        said: list[str] = []
        started = time.monotonic()
        busy = rf"cluster 'locked' is busy: inject \(pid {holder.pid}\) still runs"
        with pytest.raises(VcaError, match=busy), state.lock("provision", said.append, wait=1.0):
            pass
        assert 0.9 < time.monotonic() - started < 5
        assert said == [f"waiting for inject (pid {holder.pid}) on cluster locked to finish"]
    finally:
        holder.kill()
        holder.wait()
    # free again once the holder is gone; re-entrant in one process (provision -> inject)
    with state.lock("provision", said.append, wait=1.0), state.lock("inject", wait=0):
        pass
    assert state.lock_path.parent == vca_home / "clusters" and not state.dir.exists()


def test_lock_wait_must_be_a_number(vca_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCA_LOCK_WAIT", "soon")
    with pytest.raises(UsageError, match="VCA_LOCK_WAIT must be a number of seconds, got 'soon'"), \
            ClusterState("c", vca_home).lock("inject"):
        pass
