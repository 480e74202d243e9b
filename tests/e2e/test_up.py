"""`vca up` and `vca down` on a local spec (3 lab nodes, a setup role, a package): the plan is what the
run does, a second run changes nothing (asserted from its --json report), 3 -> 5 adds two nodes (with
the role and the release), 5 -> 2 removes three, a changed environment injects again, `vca down`
leaves nothing in the lab. One cluster for the module; the tests build on each other in order."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_LAB_ENV, _destroy_lab_cluster
from helpers import host_leftovers, vca

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
MARKER = "/etc/vca-up-role"


class Up:
    def __init__(self, folder: Path, lab_dir: Path) -> None:
        self.folder = folder
        self.name = "up" + uuid.uuid4().hex[:6]
        self.home = folder / "home"
        self.env = {"VCA_HOME": str(self.home), "VCA_LAB_DIR": str(lab_dir), **TEST_LAB_ENV,
                    "ANSIBLE_ROLES_PATH": str(folder / "roles")}
        self.spec = folder / "vca.yml"
        shutil.copytree(REPO / "examples" / "hello", folder / "app")
        role = folder / "roles" / "up_marker"
        (role / "tasks").mkdir(parents=True)
        (role / "tasks" / "main.yml").write_text(
            f"---\n- name: Write the marker\n  ansible.builtin.copy:\n    dest: {MARKER}\n"
            "    content: \"{{ vca_role }}\\n\"\n    mode: \"0644\"\n")

    def write(self, nodes: int, greeting: str = "hi") -> None:
        self.spec.write_text(f"provider: local\nnodes: {nodes}\nsetup:\n  all: [up_marker]\n"
                             f"package:\n  path: app\n  env: {{GREETING: {greeting}}}\n")

    def up(self, *extra: str) -> dict[str, object]:
        res = vca("-c", self.name, "up", str(self.spec), "--json", *extra, env=self.env, timeout=600)
        out: dict[str, object] = json.loads(res.stdout)
        return out

    def actions(self, report: dict[str, object]) -> list[str]:
        steps = report["steps"]
        assert isinstance(steps, list)
        return [s["action"] for s in steps]

    def exec(self, command: str) -> list[str]:
        res = vca("-c", self.name, "exec", "--", command, env=self.env)
        return res.stdout.strip().splitlines()


@pytest.fixture(scope="module")
def cluster(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    u = Up(tmp_path_factory.mktemp("up"), lab_dir)
    try:
        yield u
    finally:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in u.env.items():
                mp.setenv(k, v)
            _destroy_lab_cluster(u.name, str(u.home))


def test_up_creates_what_the_plan_says_and_again_changes_nothing(cluster: Up) -> None:
    cluster.write(3)
    plan = cluster.up("--plan")
    assert plan["plan"] is True and cluster.actions(plan) == ["create", "setup", "inject"]
    assert not (cluster.home / "clusters" / cluster.name).exists()  # --plan made nothing
    done = cluster.up()
    assert done["steps"] == plan["steps"] and done["changed"] is True
    vca("-c", cluster.name, "wait", "--timeout", "60", env=cluster.env)
    assert cluster.exec(f"cat {MARKER}") == [f"{cluster.name}-0: head", f"{cluster.name}-1: worker",
                                            f"{cluster.name}-2: worker"]
    greetings = cluster.exec("grep greeting= ~/vca/current/result.txt")
    assert len(greetings) == 3 and all("greeting=hi" in line for line in greetings)
    again = cluster.up()
    assert again == {**again, "changed": False, "steps": []}
    assert cluster.up("--plan")["steps"] == []


def test_growing_and_shrinking_follow_the_count(cluster: Up) -> None:
    cluster.write(5)
    plan = cluster.up("--plan")
    assert cluster.actions(plan) == ["add"]
    done = cluster.up()
    assert done["steps"] == plan["steps"]
    assert len(cluster.exec(f"cat {MARKER}")) == 5  # the new nodes got the setup role
    release = set(line.split()[-1] for line in cluster.exec("readlink ~/vca/current"))
    assert len(release) == 1  # ... and the cluster's release
    cluster.write(2)
    plan = cluster.up("--plan")
    assert cluster.actions(plan) == ["remove"]
    vca("-c", cluster.name, "wait", "--timeout", "60", env=cluster.env)
    done = cluster.up()
    assert done["steps"] == plan["steps"]
    nodes = json.loads(vca("-c", cluster.name, "status", "--json", env=cluster.env).stdout)
    assert len(nodes["nodes"] if isinstance(nodes, dict) else nodes) == 2
    assert cluster.up()["steps"] == []


def test_a_changed_environment_injects_again_and_down_leaves_nothing(cluster: Up) -> None:
    cluster.write(2, greeting="hello")
    plan = cluster.up("--plan")
    assert cluster.actions(plan) == ["inject"]
    assert cluster.up()["steps"] == plan["steps"]
    vca("-c", cluster.name, "wait", "--timeout", "60", env=cluster.env)
    lines = cluster.exec("grep greeting= ~/vca/current/result.txt; ~/vca/bin/vca-node status")
    assert sum("greeting=hello" in line for line in lines) == 2, lines
    res = vca("-c", cluster.name, "down", str(cluster.spec), "--yes", "--json", env=cluster.env)
    assert sorted(json.loads(res.stdout)["removed"]) == [f"{cluster.name}-0", f"{cluster.name}-1"]
    assert not (cluster.home / "clusters" / cluster.name).exists()
    assert host_leftovers(cluster.name) == []
    registry = Path(cluster.env["VCA_LAB_DIR"]) / "registry.json"
    assert cluster.name not in (registry.read_text() if registry.exists() else "")
