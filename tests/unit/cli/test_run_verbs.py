"""`vca run` offers the user verbs only: provider-internal plays and the validation play are not verbs."""

from __future__ import annotations

import pytest

from vcloud_ansible import paths
from vcloud_ansible.cli.main import main
from vcloud_ansible.errors import UsageError
from vcloud_ansible.playbook.runner import available_playbooks, resolve_playbook

VERBS = "collect, compile, inject, ping, setup, toolchain"


def test_available_playbooks_are_the_user_verbs() -> None:
    assert available_playbooks() == VERBS.split(", ")
    # The EC2 plays are still there for the provider, apart from the verbs.
    for name in ("provision", "teardown"):
        assert (paths.playbooks_dir() / "internal" / f"{name}.yml").is_file()
        with pytest.raises(UsageError) as info:
            resolve_playbook(name)
        assert info.value.message == f"unknown playbook '{name}'; available: {VERBS}"


@pytest.mark.parametrize(("argv", "line"), [
    (["run"], f"vca: error: name a playbook: {VERBS}, or a path to one"),
    (["run", "provision"], f"vca: error: unknown playbook 'provision'; available: {VERBS}"),
    (["run", "nosuch"], f"vca: error: unknown playbook 'nosuch'; available: {VERBS}"),
])
def test_vca_run_lists_only_user_verbs(argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    from vcloud_ansible.state import ClusterState

    ClusterState("default").create("local", {})  # a cluster to run against; it has no nodes
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == line


def test_every_user_playbook_validates_first() -> None:
    import yaml

    for name in available_playbooks():
        plays = yaml.safe_load((paths.playbooks_dir() / f"{name}.yml").read_text())
        assert plays[0].get("ansible.builtin.import_playbook") == "validate.yml", name
