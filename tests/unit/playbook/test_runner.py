"""run_playbook with real Ansible through ansible-runner, on hosts that use the local connection."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from vcloud_ansible import paths
from vcloud_ansible.errors import RemoteFailed, UsageError
from vcloud_ansible.playbook.progress import HostOutcome
from vcloud_ansible.playbook.runner import (
    ARTIFACTS_KEPT,
    RunResult,
    ansible_environment,
    control_path_dir,
    resolve_playbook,
    run_playbook,
)

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}


def plain_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=200)


def output(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def write_playbook(folder: Path, name: str, tasks: list[dict[str, object]]) -> Path:
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    return path


def write_inventory(folder: Path, extra_hosts: dict[str, dict[str, object]] | None = None) -> Path:
    hosts: dict[str, dict[str, object]] = {"h1": {}, "h2": {}, "h10": {}}
    hosts.update(extra_hosts or {})
    path = folder / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"vars": LOCAL, "hosts": hosts}}))
    return path


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return write_inventory(tmp_path)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    # tmp_path is too long for ssh sockets: runs put them in a /tmp folder; leave no litter there
    control = control_path_dir(state)
    if not control.is_relative_to(tmp_path):
        shutil.rmtree(control, ignore_errors=True)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ansible-runner's private data dir is made with tempfile: point it here to see it is removed."""
    folder = tmp_path / "private-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_successful_run(tmp_path: Path, inventory: Path, state_dir: Path) -> None:
    playbook = write_playbook(
        tmp_path,
        "deploy",
        [
            {"name": "check vars", "ansible.builtin.assert": {"that": ["greeting == 'hello'"]}},
            {"name": "pretend change", "ansible.builtin.debug": {"msg": "x"}, "changed_when": True},
            {"name": "cache", "ansible.builtin.set_fact": {"marker": 1, "cacheable": True}},
            {
                "name": "only h10",
                "ansible.builtin.debug": {"msg": "y"},
                "when": "inventory_hostname == 'h10'",
            },
        ],
    )
    before = signal.getsignal(signal.SIGINT)
    console = plain_console()
    result = run_playbook(
        playbook,
        inventory=inventory,
        state_dir=state_dir,
        extravars={"greeting": "hello"},
        console=console,
        hosts_expected=["h1", "h2", "h10"],
    )
    assert result.ok and result.rc == 0 and result.status == "successful"
    assert list(result.hosts) == ["h1", "h2", "h10"]
    assert result.failed_hosts == []
    h1, h10 = result.hosts["h1"], result.hosts["h10"]
    assert (h1.ok, h1.changed, h1.failed, h1.skipped, h1.status) == (3, 1, 0, 1, "changed")
    assert (h10.ok, h10.skipped) == (4, 0)
    assert result.changed_total == 3
    result.raise_for_failures("deploy")  # does not raise
    assert result.artifacts_dir.parent == state_dir / "runs"
    assert (result.artifacts_dir / "stdout").is_file()
    # the fact cache is the cluster's, not the artifacts' (ansible-core 2.19 names the files s1_<host>)
    assert [p.name.endswith("h1") for p in (state_dir / "facts").iterdir()].count(True) == 1
    assert signal.getsignal(signal.SIGINT) is before
    assert "deploy: 3 hosts" in output(console) and "✗" not in output(console)


def test_one_host_fails(tmp_path: Path, inventory: Path, state_dir: Path) -> None:
    playbook = write_playbook(
        tmp_path,
        "inject",
        [
            {"name": "first", "ansible.builtin.debug": {"msg": "x"}},
            {
                "name": "unpack package",
                "ansible.builtin.debug": {"msg": "x"},
                "failed_when": "inventory_hostname == 'h2'",
            },
            {"name": "after", "ansible.builtin.debug": {"msg": "x"}},
        ],
    )
    console = plain_console()
    result = run_playbook(playbook, inventory=inventory, state_dir=state_dir, console=console)
    assert not result.ok and result.rc != 0
    assert result.failed_hosts == ["h2"]
    assert list(result.hosts) == ["h1", "h2", "h10"]
    assert result.hosts["h2"].failed_task == "unpack package"
    assert result.hosts["h2"].ok == 1
    assert result.hosts["h10"].ok == 3
    with pytest.raises(RemoteFailed) as info:
        result.raise_for_failures("inject")
    assert info.value.hosts == ["h2"]
    assert info.value.message.startswith("inject failed on 1 of 3 hosts: h2 (unpack package")
    text = output(console)
    assert "✗ h2: unpack package: failed_when condition is true: x" in text
    table = text[text.index("inject: 3 hosts") :]
    assert table.index("h1 ") < table.index("h2 ") < table.index("h10")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_host(tmp_path: Path, state_dir: Path) -> None:
    ssh_host = {
        "ansible_connection": "ssh",
        "ansible_host": "127.0.0.1",
        "ansible_port": closed_port(),
        "ansible_timeout": 3,
        "ansible_ssh_retries": 0,
    }
    inventory = write_inventory(tmp_path, {"h3": ssh_host})
    playbook = write_playbook(tmp_path, "ping", [{"name": "reach", "ansible.builtin.ping": {}}])
    console = plain_console()
    result = run_playbook(playbook, inventory=inventory, state_dir=state_dir, limit="h1,h3", console=console)
    assert list(result.hosts) == ["h1", "h3"]
    assert result.failed_hosts == ["h3"]
    h3 = result.hosts["h3"]
    assert (h3.status, h3.unreachable, h3.failed_task) == ("unreachable", 1, "reach")
    assert h3.message is not None and "refused" in h3.message.lower()
    assert "✗ h3: reach:" in output(console)
    with pytest.raises(RemoteFailed, match=r"failed on 1 of 2 hosts: h3 \(reach: "):
        result.raise_for_failures("ping")


def test_secrets_never_reach_the_state_dir(
    tmp_path: Path, inventory: Path, state_dir: Path, private_tmp: Path
) -> None:
    secret, env_secret = "s3cr3t-Value-81f2e0", "env-T0ken-5c7d1a"
    out = tmp_path / "out"
    out.mkdir()
    content = "{{ vca_secret }} {{ lookup('env', 'VCA_TEST_TOKEN') }}"
    playbook = write_playbook(
        tmp_path,
        "secret",
        [
            {
                "name": "write secret",
                "ansible.builtin.copy": {
                    "content": content,
                    "dest": f"{out}/{{{{ inventory_hostname }}}}.txt",
                },
                "no_log": True,
            }
        ],
    )
    console = plain_console()
    result = run_playbook(
        playbook,
        inventory=inventory,
        state_dir=state_dir,
        limit="h1",
        secret_extravars={"vca_secret": secret},
        env={"VCA_TEST_TOKEN": env_secret},
        verbose=1,
        console=console,
    )
    assert result.ok, output(console)
    assert (out / "h1.txt").read_text() == f"{secret} {env_secret}"
    state_files = files_under(state_dir)
    assert any(p.name == "command" for p in state_files) and any("job_events" in str(p) for p in state_files)
    for path in state_files:
        data = path.read_bytes()
        assert secret.encode() not in data, path
        assert env_secret.encode() not in data, path
    command = json.loads((result.artifacts_dir / "command").read_text())
    assert command["env"]["VCA_TEST_TOKEN"] == "<redacted>"
    assert command["env"]["ANSIBLE_CONFIG"] == str(paths.ansible_cfg())
    assert list(private_tmp.iterdir()) == []  # private data dir and secrets file are gone
    # verbose: Ansible's own output went to the console, secrets not in it either
    assert "PLAY RECAP" in output(console)
    assert secret not in output(console) and env_secret not in output(console)


def test_artifacts_are_rotated(tmp_path: Path, inventory: Path, state_dir: Path) -> None:
    playbook = write_playbook(tmp_path, "noop", [{"ansible.builtin.debug": {"msg": "x"}}])
    for _ in range(4):
        result = run_playbook(
            playbook,
            inventory=inventory,
            state_dir=state_dir,
            limit="h1",
            console=plain_console(),
            keep_runs=3,
        )
        assert result.ok
    runs = sorted((state_dir / "runs").iterdir())
    assert len(runs) == 3
    assert result.artifacts_dir in runs
    assert ARTIFACTS_KEPT == 10


def test_playbook_error_is_reported(tmp_path: Path, inventory: Path, state_dir: Path) -> None:
    playbook = tmp_path / "broken.yml"
    playbook.write_text("- hosts: all\n  tasks: [\n")
    console = plain_console()
    result = run_playbook(playbook, inventory=inventory, state_dir=state_dir, console=console)
    assert not result.ok and result.hosts == {} and result.failed_hosts == []
    assert result.error is not None and "ERROR" in result.error
    with pytest.raises(RemoteFailed, match=r"broken failed \(ansible-playbook exit code \d+\): \[ERROR\]"):
        result.raise_for_failures("broken")
    assert "✗ [ERROR]" in output(console)


def test_resolve_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "inject.yml").write_text("[]\n")
    (books / "collect.yaml").write_text("[]\n")
    monkeypatch.setattr(paths, "playbooks_dir", lambda: books)
    assert resolve_playbook("inject") == books / "inject.yml"
    assert resolve_playbook("inject.yml") == books / "inject.yml"
    assert resolve_playbook("collect") == books / "collect.yaml"
    own = tmp_path / "mine.yml"
    own.write_text("[]\n")
    assert resolve_playbook(own) == own.resolve()
    assert resolve_playbook(str(own)) == own.resolve()
    with pytest.raises(UsageError) as info:
        resolve_playbook("nosuch")
    assert info.value.message == "unknown playbook 'nosuch'; available: collect, inject"
    with pytest.raises(UsageError, match="playbook not found"):
        resolve_playbook(tmp_path / "missing.yml")


def test_missing_inventory_is_a_usage_error(tmp_path: Path, state_dir: Path) -> None:
    playbook = write_playbook(tmp_path, "noop", [])
    with pytest.raises(UsageError, match="inventory not found"):
        run_playbook(playbook, inventory=tmp_path / "nope.yml", state_dir=state_dir)


def test_control_path_dir_is_short_and_stable(tmp_path: Path) -> None:
    assert control_path_dir(Path("/s")) == Path("/s/cp")
    deep = tmp_path / ("x" * 60) / "clusters" / "demo"
    chosen = control_path_dir(deep)
    assert chosen == control_path_dir(deep)
    assert chosen != control_path_dir(deep.parent / "other")
    assert chosen.parent == Path("/tmp") and str(os.getuid()) in chosen.name
    # socket path: dir + "/" + 40 hex (%C) + "." + 16 chars ssh adds while it sets up the master
    assert len(str(chosen)) + 1 + 40 + 17 < 108


def test_ansible_environment(tmp_path: Path) -> None:
    env = ansible_environment(tmp_path, {"ANSIBLE_FORKS": "5"})
    assert env["ANSIBLE_CONFIG"] == str(paths.ansible_cfg())
    assert env["ANSIBLE_ROLES_PATH"] == str(paths.roles_dir())
    assert env["ANSIBLE_COLLECTIONS_PATH"] == paths.collections_path()
    assert env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] == str(tmp_path / "facts")
    assert env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] == "true"
    assert env["ANSIBLE_SSH_CONTROL_PATH_DIR"] == str(control_path_dir(tmp_path))
    assert env["ANSIBLE_FORKS"] == "5"
    assert env["ANSIBLE_NOCOLOR"] == "1"
    assert "ANSIBLE_NOCOLOR" not in ansible_environment(tmp_path, color=True)


def test_failed_hosts_sort_naturally_and_message_is_bounded(tmp_path: Path) -> None:
    names = ["node-10", "node-2", "node-1", "node-3", "node-4", "node-5", "node-6"]
    hosts = {n: HostOutcome(n, failed=1, failed_task="t", message="m") for n in names}
    hosts["node-7"] = HostOutcome("node-7", ok=1)
    hosts["node-11"] = HostOutcome("node-11", unreachable=1)
    result = RunResult(rc=2, status="failed", hosts=hosts, artifacts_dir=tmp_path)
    assert result.failed_hosts == [
        "node-1", "node-2", "node-3", "node-4", "node-5", "node-6", "node-10", "node-11"
    ]  # fmt: skip
    with pytest.raises(RemoteFailed) as info:
        result.raise_for_failures("collect")
    assert info.value.message == (
        "collect failed on 8 of 9 hosts: node-1 (t: m), node-2 (t: m), node-3 (t: m), "
        "node-4 (t: m), node-5 (t: m), and 3 more"
    )
    assert len(info.value.hosts) == 8
    timed_out = RunResult(rc=254, status="timeout", hosts={}, artifacts_dir=tmp_path)
    with pytest.raises(RemoteFailed, match="collect timed out"):
        timed_out.raise_for_failures("collect")


def sleeping(argv: bytes) -> bool:
    return any(
        Path("/proc", pid, "cmdline").read_bytes() == argv
        for pid in os.listdir("/proc")
        if pid.isdigit() and Path("/proc", pid, "cmdline").exists()
    )


def test_ctrl_c_stops_ansible_and_its_workers_then_reaches_the_caller(
    tmp_path: Path, inventory: Path, state_dir: Path
) -> None:
    playbook = write_playbook(tmp_path, "slow", [{"ansible.builtin.command": "sleep 31.7"}])
    before = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_playbook(
                playbook, inventory=inventory, state_dir=state_dir, limit="h1", console=plain_console()
            )
    finally:
        timer.cancel()
    assert time.monotonic() - started < 10
    assert signal.getsignal(signal.SIGINT) is before
    (run,) = (state_dir / "runs").iterdir()
    assert (run / "status").read_text() in ("failed", "canceled")
    if Path("/proc/self/cmdline").exists():
        deadline = time.monotonic() + 5
        while sleeping(b"sleep\x0031.7\x00") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not sleeping(b"sleep\x0031.7\x00"), "Ansible's worker outlived the run"


def test_extra_vars_stay_out_of_runs(tmp_path: Path, inventory: Path, state_dir: Path, private_tmp: Path) -> None:
    """Plain extra vars (what `vca run KEY=VALUE` passes) may hold secrets: only the run's own output
    may show them, never the recorded command line."""
    from vcloud_ansible.playbook.runner import Verbatim

    value = "plain-Extra-9d41c7"
    literal = '{"T": "{{ 7*7 }}", "M": "l1\\nl2"}'
    out = tmp_path / "out"
    out.mkdir()
    playbook = write_playbook(tmp_path, "extra", [
        {"ansible.builtin.copy": {"content": "{{ token }}", "dest": f"{out}/token"}, "no_log": True},
        {"ansible.builtin.copy": {"content": "{{ job_env }}", "dest": f"{out}/job_env"}, "no_log": True},
        {"ansible.builtin.copy": {"content": "{{ n | type_debug }}", "dest": f"{out}/n"}},
    ])
    result = run_playbook(playbook, inventory=inventory, state_dir=state_dir, limit="h1",
                          extravars={"token": value, "job_env": Verbatim(literal), "n": 493},
                          console=plain_console())
    assert result.ok
    assert (out / "token").read_text() == value
    assert (out / "job_env").read_text() == literal  # text, never a template
    assert (out / "n").read_text() == "int"  # typed values keep their type
    files = files_under(state_dir)
    assert any(p.name == "command" for p in files)
    for path in files:
        assert value.encode() not in path.read_bytes(), path
    assert list(private_tmp.iterdir()) == []


def test_extra_vars_file_keeps_types() -> None:
    import enum

    from vcloud_ansible.playbook.secrets import Verbatim, _plain

    class Color(enum.StrEnum):
        RED = "red"

    data = {"t": (1, 2), "c": Color.RED, "s": "0755", "v": Verbatim("{{ x }}"), "d": {"n": None, "b": True}}
    assert _plain(data) == {"t": [1, 2], "c": "red", "s": "0755", "v": "{{ x }}", "d": {"n": None, "b": True}}
    with pytest.raises(TypeError):
        _plain({"x": object()})
