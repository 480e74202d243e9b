"""The setup settings: ROLE[@ON] requests, resolving role names and folders, merging and forgetting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcloud_ansible import paths
from vcloud_ansible.errors import UsageError
from vcloud_ansible.setup import settings
from vcloud_ansible.state import ClusterRecord, ClusterState


def make_role(folder: Path) -> Path:
    (folder / "tasks").mkdir(parents=True)
    (folder / "tasks" / "main.yml").write_text("---\n[]\n")
    return folder


@pytest.fixture
def roles_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user roles folder on ANSIBLE_ROLES_PATH holding the roles 'alpha' and 'beta'."""
    folder = tmp_path / "user-roles"
    make_role(folder / "alpha")
    make_role(folder / "beta")
    monkeypatch.setenv("ANSIBLE_ROLES_PATH", str(folder))
    return folder


@pytest.mark.parametrize(("text", "want"), [
    ("alpha", ("alpha", "all")),
    ("alpha@head", ("alpha", "head")),
    ("alpha@dev", ("alpha", "dev")),
    ("./my@roles/x", ("./my@roles/x", "all")),  # a folder may contain @
    ("./my@roles/x@worker", ("./my@roles/x", "worker")),
])
def test_split_request(text: str, want: tuple[str, str]) -> None:
    assert settings.split_request(text) == want


@pytest.mark.parametrize("text", ["alpha@nonsense", "alpha@", "@head"])
def test_split_request_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        settings.split_request(text)


def test_roles_path_has_vca_roles_first(roles_path: Path) -> None:
    where = settings.roles_path()
    assert where[0] == paths.roles_dir() and where[1] == roles_path


def test_resolve_names_folders_and_collections(roles_path: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.resolve("alpha") == "alpha"
    assert settings.resolve("collect") == "collect"  # vca's own roles/ is on the path
    folder = make_role(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    assert settings.resolve("./mine") == str(folder)  # stored absolute
    assert settings.resolve(str(folder)) == str(folder)
    assert settings.resolve("community.mongodb.mongodb_linux") == "community.mongodb.mongodb_linux"
    for bad, why in [("nosuch", "unknown setup role 'nosuch'"), ("./nosuch", "setup role folder not found"),
                     ("bad name!", "invalid setup role name"), ("", "needs a name"),
                     ("community.general.no_such_role", "has no role no_such_role")]:
        with pytest.raises(UsageError) as info:
            settings.resolve(bad)
        assert why in info.value.message, info.value.message
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a role folder"):
        settings.resolve("./empty")


def test_merged_appends_in_order_once_per_target(roles_path: Path) -> None:
    current = {"all": ["alpha"]}
    out = settings.merged(current, {"head": ["beta", "alpha"], "all": ["alpha", "beta"]})
    assert out == {"all": ["alpha", "beta"], "head": ["beta", "alpha"]}
    assert list(out) == ["all", "head"]  # targets in TARGETS order
    assert current == {"all": ["alpha"]}  # not changed in place
    assert settings.merged(out, None) == out
    assert settings.merged({}, {"dev": []}) == {}


def test_merged_checks_before_changing_anything(roles_path: Path) -> None:
    with pytest.raises(UsageError, match="--on must be one of all, head, worker, dev, got 'nonsense'"):
        settings.merged({}, {"nonsense": ["alpha"]})
    with pytest.raises(UsageError, match="unknown setup role 'gamma'"):
        settings.merged({"all": ["alpha"]}, {"head": ["beta", "gamma"]})


def test_without(roles_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = {"all": ["alpha"], "head": ["alpha", "beta"]}
    assert settings.without(current, "alpha", "head") == ({"all": ["alpha"], "head": ["beta"]}, ["head"])
    assert settings.without(current, "alpha", None) == ({"head": ["beta"]}, ["all", "head"])
    with pytest.raises(UsageError, match="setup role 'beta' is not named on worker"):
        settings.without(current, "beta", "worker")
    with pytest.raises(UsageError, match="--on must be one of"):
        settings.without(current, "beta", "nonsense")
    # A folder is forgotten by the path it was named with, even once it is gone.
    monkeypatch.chdir(tmp_path)
    gone = str(tmp_path / "gone")
    assert settings.without({"dev": [gone]}, "./gone", None) == ({}, ["dev"])


def test_for_playbook_and_roles_of() -> None:
    setup = {"all": ["a"], "head": ["h"], "dev": ["d1", "d2"]}
    assert settings.for_playbook(setup) == {"all": ["a"], "head": ["h"], "worker": [], "dev": ["d1", "d2"]}
    assert settings.for_playbook({}) == {"all": [], "head": [], "worker": [], "dev": []}
    assert settings.roles_of(setup, "head") == ["a", "h"]
    assert settings.roles_of(setup, "worker") == ["a"]
    assert settings.roles_of(setup, "dev") == ["a", "d1", "d2"]
    assert settings.added({"all": ["a"]}, setup) == {"head": ["h"], "dev": ["d1", "d2"]}


def test_cluster_record_keeps_setup_and_old_records_load(vca_home: Path) -> None:
    st = ClusterState("c")
    spec = st.create("local", {})
    assert spec.setup == {}
    st.save(ClusterRecord(**{**json.loads(st.record_path.read_text()), "setup": {"head": ["alpha"]}}))
    assert st.load().setup == {"head": ["alpha"]}
    old = json.loads(st.record_path.read_text())
    del old["setup"]  # a record written before the setup stage existed
    st.record_path.write_text(json.dumps(old))
    assert st.load().setup == {}
