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
    assert stat.S_IMODE(st.spec_path.stat().st_mode) == 0o600
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
