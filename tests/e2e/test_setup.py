"""The setup stage and node roles on real lab nodes: roles named per node role, applied on every node,
on late-added nodes only, on the head only; a failing role; idempotence; refusals before anything is
made. One cluster for the whole module (the tests run in order and build on each other)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_LAB_ENV
from helpers import raw_ansible, vca

pytestmark = pytest.mark.lab

MARKER = "/etc/vca-setup-test"
HEAD_MARKER = "/etc/vca-setup-head"
EXTRA_MARKER = "/etc/vca-setup-extra"


def _role(folder: Path, tasks: str) -> Path:
    (folder / "tasks").mkdir(parents=True)
    (folder / "tasks" / "main.yml").write_text("---\n" + tasks)
    return folder


def _writes(path: str) -> str:
    return f"""- name: Write the node's role and index
  ansible.builtin.copy:
    dest: {path}
    content: "{{{{ vca_role }}}} {{{{ vca_node_index }}}}\\n"
    mode: "0644"
"""


class Lab:
    """The module's cluster: its name, the environment every vca call gets, and the test roles."""

    def __init__(self, home: Path, roles: Path) -> None:
        self.name = "ts" + uuid.uuid4().hex[:6]
        self.home = home
        self.env = {**TEST_LAB_ENV, "VCA_HOME": str(home), "VCA_LAB_DIR": os.environ["VCA_LAB_DIR"]}
        self.marker = _role(roles / "marker", _writes(MARKER))
        self.head_marker = _role(roles / "head_marker", _writes(HEAD_MARKER))
        self.extra = _role(roles / "extra", _writes(EXTRA_MARKER))
        self.failing = _role(roles / "failing", """- name: Fail on purpose on workers
  ansible.builtin.fail:
    msg: this role is broken on purpose
  when: vca_role == 'worker'
""")

    def vca(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return vca("-c", self.name, *args, check=check, env=self.env)

    def status(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = json.loads(self.vca("status", "--json").stdout)
        return rows

    def roles(self) -> dict[str, list[str]]:
        named: dict[str, list[str]] = json.loads(self.vca("setup", "--list", "--json").stdout)
        return named

    def on_nodes(self, command: str) -> dict[int, str]:
        """``command``'s output on every node, by index."""
        out = self.vca("exec", "--", command).stdout
        lines = (line.split(": ", 1) for line in out.splitlines() if ": " in line)
        return {int(name.rsplit("-", 1)[1]): text.strip() for name, text in lines}


@pytest.fixture(scope="module")
def lab(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two nodes (0 head, 1 worker) with no setup roles; removed after the module, pass or fail."""
    from vcloud_ansible.lab.manager import Lab as LabManager

    base = tmp_path_factory.mktemp("setup")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VCA_LAB_DIR", str(lab_dir))
        for k, v in TEST_LAB_ENV.items():
            mp.setenv(k, v)
        lab = Lab(base / "home", base / "roles")
        try:
            res = lab.vca("provision", "2")
            # No roles named: the stage costs nothing, not even a playbook run.
            assert "setting up" not in res.stderr, res.stderr
            runs = base / "home" / "clusters" / lab.name / "runs"
            assert not runs.exists() or not any("setup" in p.name for p in runs.iterdir())
            yield lab
        finally:
            LabManager().destroy(lab.name, str(lab.home))


def _one_line_refusal(res: subprocess.CompletedProcess[str], text: str) -> None:
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("vca: error: "), res.stderr
    assert text in res.stderr, res.stderr


def test_refusals_change_nothing(lab: Lab) -> None:
    before = lab.status()
    assert [(r["index"], r["role"]) for r in before] == [(0, "head"), (1, "worker")]
    _one_line_refusal(lab.vca("provision", "1", "--role", "boss", check=False), "'boss' is not one of")
    _one_line_refusal(lab.vca("provision", "1", "--role", "head", check=False),
                      f"cluster '{lab.name}' already has a head ({lab.name}-0); a cluster has at most one")
    _one_line_refusal(lab.vca("setup", "--add", str(lab.marker), "--on", "nonsense", check=False),
                      "--on must be one of all, head, worker, dev, got 'nonsense'")
    _one_line_refusal(lab.vca("setup", "--add", "no_such_role", check=False), "unknown setup role 'no_such_role'")
    _one_line_refusal(lab.vca("provision", "1", "--setup", "no_such_role", check=False),
                      "unknown setup role 'no_such_role'")
    _one_line_refusal(lab.vca("provision", "1", "--setup", f"{lab.marker}@nonsense", check=False),
                      "--on must be one of")
    _one_line_refusal(lab.vca("setup", "--remove", "no_such_role", check=False), "is not named")
    assert [(r["index"], r["role"], r["state"]) for r in lab.status()] == [(0, "head", "up"), (1, "worker", "up")]
    assert lab.roles() == {"all": [], "head": [], "worker": [], "dev": []}
    res = lab.vca("setup")  # nothing named: nothing runs
    assert "no setup roles named: nothing to apply" in res.stderr


def test_add_applies_on_every_node(lab: Lab) -> None:
    res = lab.vca("setup", "--add", str(lab.marker))
    assert "applied the setup roles on nodes 0-1" in res.stderr, res.stderr
    assert lab.on_nodes(f"cat {MARKER}") == {0: "head 0", 1: "worker 1"}
    assert lab.roles() == {"all": [str(lab.marker)], "head": [], "worker": [], "dev": []}


def test_second_run_changes_nothing(lab: Lab) -> None:
    res = lab.vca("setup", "--json")
    hosts = json.loads(res.stdout)["hosts"]
    assert sorted(hosts) == [f"{lab.name}-0", f"{lab.name}-1"]
    assert all(h["changed"] == 0 and h["failed"] == 0 for h in hosts.values()), hosts
    assert "0 tasks changed something" in res.stderr


def test_late_node_gets_the_roles_alone(lab: Lab) -> None:
    stamp = f"stat -c %y {MARKER}"
    before = lab.on_nodes(stamp)
    res = lab.vca("provision", "1", "--role", "dev")
    assert "setting up 1 new node: marker" in res.stderr, res.stderr
    assert lab.on_nodes(f"cat {MARKER}") == {0: "head 0", 1: "worker 1", 2: "dev 2"}
    after = lab.on_nodes(stamp)
    assert {i: after[i] for i in (0, 1)} == before  # the old nodes were not touched
    assert [(r["index"], r["role"]) for r in lab.status()] == [(0, "head"), (1, "worker"), (2, "dev")]
    # The inventory groups follow the roles.
    inv = lab.vca("inventory").stdout.strip()
    groups = json.loads(raw_ansible("ansible-inventory", "-i", inv, "--list").stdout)
    assert groups["head"]["hosts"] == [f"{lab.name}-0"] == groups["role_head"]["hosts"]
    assert groups["workers"]["hosts"] == [f"{lab.name}-1"] == groups["role_worker"]["hosts"]
    assert groups["dev"]["hosts"] == [f"{lab.name}-2"] == groups["role_dev"]["hosts"]


def test_on_head_only(lab: Lab) -> None:
    res = lab.vca("setup", "--add", str(lab.head_marker), "--on", "head")
    assert "applied the setup roles on node 0" in res.stderr, res.stderr
    assert lab.on_nodes(f"cat {HEAD_MARKER} 2>/dev/null || echo none") == {0: "head 0", 1: "none", 2: "none"}
    assert lab.roles()["head"] == [str(lab.head_marker)]


def test_failing_role_names_the_host_and_keeps_the_nodes(lab: Lab) -> None:
    res = lab.vca("setup", "--add", str(lab.failing), "--on", "worker", check=False)
    assert res.returncode == 1, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("vca: error: setup failed on 1 of 1 hosts: "), last
    assert f"{lab.name}-1 (Fail on purpose on workers: this role is broken on purpose)" in last
    assert f"the nodes stay as they are; fix the role, then `vca -c {lab.name} setup --node 1` retries" in last
    assert [r["state"] for r in lab.status()] == ["up", "up", "up"]
    res = lab.vca("setup", "--remove", str(lab.failing))
    assert "nothing is undone on the nodes" in res.stderr
    assert lab.roles()["worker"] == []


def test_provision_names_roles_for_new_and_tells_about_old(lab: Lab) -> None:
    res = lab.vca("provision", "1", "--setup", f"{lab.extra}@worker")
    assert "setting up 1 new node: marker, extra" in res.stderr, res.stderr
    assert f"`vca -c {lab.name} setup --node 1` applies them" in res.stderr, res.stderr
    assert lab.on_nodes(f"cat {EXTRA_MARKER} 2>/dev/null || echo none") == {0: "none", 1: "none", 2: "none",
                                                                            3: "worker 3"}
    assert lab.roles()["worker"] == [str(lab.extra)]
    lab.vca("setup", "--node", "1")
    assert lab.on_nodes(f"cat {EXTRA_MARKER} 2>/dev/null || echo none")[1] == "worker 1"


def test_raw_playbooks_validate_first(lab: Lab) -> None:
    inv = lab.vca("inventory").stdout.strip()
    # The README's line, as a shell runs it.
    env = {**lab.env, "VCA_CLUSTER": lab.name}
    readme = (" ".join(f"export {k}={shlex.quote(v)};" for k, v in env.items())
              + f' vca() {{ {shlex.quote(sys.executable)} -m vcloud_ansible.cli.main "$@"; }}; '
              'ansible-playbook -i "$(vca inventory)" playbooks/setup.yml '
              '-e "{\\"vca_setup_roles\\": $(vca setup --list --json)}"')
    raw = raw_ansible("bash", "-c", readme)
    assert raw.returncode == 0, raw.stdout + raw.stderr
    assert raw.stdout.count("changed=0") == 4 and raw.stdout.count("failed=0") == 4, raw.stdout
    raw = raw_ansible("ansible-playbook", "-i", inv, "playbooks/inject.yml")
    assert raw.returncode != 0 and "this playbook needs pkg" in raw.stdout, raw.stdout
    res = lab.vca("run", "setup", check=False)
    assert res.returncode != 0 and "this playbook needs vca_setup_roles" in res.stderr, res.stderr
