"""The init script's file handling and node state, off the nodes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.state import ClusterState
from vcloud_ansible.storage import init_script


def test_check_refuses_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="init script not found: "):
        init_script.check(tmp_path / "nope.sh")
    with pytest.raises(UsageError, match="init script is not a file: "):
        init_script.check(tmp_path)
    empty = tmp_path / "empty.sh"
    empty.write_text("")
    with pytest.raises(UsageError, match="init script is empty"):
        init_script.check(empty)
    ok = tmp_path / "ok.sh"
    ok.write_text("#!/bin/sh\necho hi\n")
    assert init_script.check(ok) == ok.resolve()
    if os.geteuid() != 0:  # root reads anything
        ok.chmod(0)
        with pytest.raises(UsageError, match="init script is not readable"):
            init_script.check(ok)


def test_staged_copy_is_private_and_gone_when_the_cluster_was_never_made(tmp_path: Path) -> None:
    script = tmp_path / "init.sh"
    script.write_text("echo hi\n")
    state = ClusterState("demo", tmp_path / "home")
    with pytest.raises(RuntimeError), init_script.staged(state, script) as roles:
        assert roles == {"all": ["init_script"]}
        stored = init_script.stored_path(state)
        assert stored.read_text() == "echo hi\n" and stored.stat().st_mode & 0o777 == 0o600
        raise RuntimeError("provision refused")
    assert not state.dir.exists()
    with init_script.staged(state, None) as roles:
        assert roles == {}


def test_parse_and_details() -> None:
    out = "1234\nrelease=abc\njob=none\ninit_exit=3\ninit_time=1700000000\ninit_seconds=2\n"
    state = init_script.parse(out)
    assert state == init_script.InitState(3, 1700000000.0, 2.0)
    assert init_script.details(state) == {"init_exit": 3, "init_time": 1700000000.0}
    assert init_script.parse("1234\njob=none\n") is None
    assert init_script.details(None) == {"init_exit": None, "init_time": None}
    assert init_script.failed({"a": state, "b": None, "c": init_script.InitState(0, 1.0, 0.0)}) == ["a"]


def test_boot_script_for_ec2_user_data_runs_once_and_records_the_state(tmp_path: Path) -> None:
    import email
    import subprocess

    from vcloud_ansible.providers.ec2 import provider as ec2
    from vcloud_ansible.providers.ec2.settings import Ec2Settings

    state = ClusterState("demo", tmp_path / "home")
    assert init_script.boot_script(state) == ""
    script = tmp_path / "init.sh"
    script.write_text("echo 'ran: \"$0\"' >> ../runs\nexit 4\n")
    state.create("ec2", {})
    with init_script.staged(state, script):
        pass
    boot = init_script.boot_script(state, timeout=30)
    node = tmp_path / "node" / "init"
    wrapped = boot.replace(init_script.NODE_DIR, str(node))
    for _ in range(2):
        rc = subprocess.run(["sh", "-c", wrapped], capture_output=True, text=True, check=False).returncode
        assert rc == 4
    parsed = init_script.parse((node / "status").read_text())
    assert parsed is not None and parsed.exit == 4
    assert (tmp_path / "node" / "runs").read_text().count("ran:") == 2  # failed: it runs again
    assert not (node / "done").exists()
    script.write_text("#!/bin/sh\necho fine\n")
    with init_script.staged(state, script):
        pass
    wrapped = init_script.boot_script(state).replace(init_script.NODE_DIR, str(node))
    for _ in range(2):
        assert subprocess.run(["sh", "-c", wrapped], capture_output=True, check=False).returncode == 0
    assert (node / "output").read_text() == "fine\n" and (node / "done").exists()

    # EC2: the cluster's init script rides in the user-data, after the user's own and the key part.
    own = tmp_path / "own.sh"
    own.write_text("#!/bin/sh\necho own\n")
    settings = Ec2Settings.from_dict({"region": "eu-west-1", "owner": "me", "key_name": "corp", "user_data": str(own)})
    parts = email.message_from_string(ec2.user_data(state, settings)).get_payload()
    assert [p.get_content_type() for p in parts] == ["text/cloud-config", "text/x-shellscript", "text/x-shellscript"]
    assert "vca: the cluster's init script" in parts[2].get_payload()
    alone = ec2.user_data(state, Ec2Settings.from_dict({"region": "eu-west-1", "owner": "me"}))
    assert alone == init_script.boot_script(state)
