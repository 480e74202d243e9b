"""Provider static on three hosts that vca's providers did not make: lab machines booted through
vcloud_ansible.lab directly (another cluster name and owner), reached with a key of their own, one of
them with another login user (ops, sudo) on another sshd port, two with capabilities. exec, --where,
inject, collect, setup and the pinned host keys on a static cluster; teardown leaves the hosts running
and exactly as they were before vca saw them. One set of hosts for the module; the tests build on each
other in order."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_LAB_ENV
from helpers import vca

pytestmark = pytest.mark.lab
Static = tuple[str, dict[str, str], dict[int, str]]  # cluster name, env, each host as it was before

# What a host holds that vca could touch: for root and for ops.
SNAPSHOT = ("for h in /root /home/ops; do [ -d $h ] || continue; echo \"== $h\"; ls -A $h | grep -v '^.bash_history$'; "
            "ls -A $h/.ssh; cat $h/.ssh/authorized_keys; cat $h/.ssh/config 2>/dev/null; done; "
            "echo == etc; ls -A /etc/vca /var/lib/vca 2>&1; cat /etc/hosts; ls -A /home/ops/work 2>&1; true")


class Hosts:
    def __init__(self, tmp: Path, lab_dir: Path) -> None:
        self.tmp = tmp
        self.key = tmp / "user_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        self.known = tmp / "known_hosts"
        self.owner = str(tmp / "owner")
        self.lab_cluster = "hosts" + uuid.uuid4().hex[:5]
        self.env = {"VCA_LAB_DIR": str(lab_dir), **TEST_LAB_ENV}
        self.ips: list[str] = []

    def wait_ssh(self, i: int, user: str = "root", port: int = 22, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if subprocess.run(self._argv(i, "true", user, port), capture_output=True, timeout=30).returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"host {i} not reachable as {user} on port {port}")

    def _argv(self, i: int, command: str, user: str, port: int) -> list[str]:
        return ["ssh", "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known}", "-o", "StrictHostKeyChecking=yes",
                "-o", f"HostKeyAlias=host{i}", "-p", str(port), f"{user}@{self.ips[i]}", command]

    def sh(self, i: int, command: str, user: str = "root", port: int = 22) -> str:
        res = subprocess.run(self._argv(i, command, user, port), capture_output=True, text=True, timeout=60,
                             check=False)
        assert res.returncode == 0, res.stderr
        return res.stdout


@pytest.fixture(scope="module")
def hosts(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    from vcloud_ansible.lab.manager import Lab

    h = Hosts(tmp_path_factory.mktemp("static"), lab_dir)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in h.env.items():
            mp.setenv(k, v)
        lab = Lab()
        try:
            made = lab.create(h.lab_cluster, 3, (h.key.with_suffix(".pub")).read_text().strip(), h.owner)
            h.ips = [n.ip for n, _ in made]
            h.known.write_text("".join(f"host{n.index} {key}\n" for n, key in made))
            for i in range(3):
                h.wait_ssh(i)
            # host 2: a login user of its own (sudo without password) and sshd on port 2222 as well
            h.sh(2, "useradd -m -s /bin/sh ops && install -d -m 700 -o ops -g ops /home/ops/.ssh"
                    " && install -m 600 -o ops -g ops /root/.ssh/authorized_keys /home/ops/.ssh/"
                    " && echo 'ops ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/ops"
                    " && printf 'Port 22\\nPort 2222\\n' > /etc/ssh/sshd_config.d/ports.conf"
                    " && systemctl restart ssh")
            h.wait_ssh(2, user="ops", port=2222)
            yield h
        finally:
            lab.destroy(h.lab_cluster, h.owner)


@pytest.fixture(scope="module")
def static(hosts: Hosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Static]:
    home = tmp_path_factory.mktemp("static_home")
    env = {"VCA_HOME": str(home)}
    before = {i: hosts.sh(i, SNAPSHOT) for i in range(3)}
    yield "st" + uuid.uuid4().hex[:5], env, before
    for name in os.listdir(home / "clusters") if (home / "clusters").is_dir() else []:
        if not name.startswith("."):
            vca("-c", name, "teardown", "--yes", env=env, check=False)


def test_create_pins_keys_and_groups_capabilities(hosts: Hosts, static: Static) -> None:
    name, env, _ = static
    ip0, ip1, ip2 = hosts.ips
    res = vca("create", name, "--identity", str(hosts.key),
              "--static", json.dumps({"host": ip0, "capabilities": ["redis"]}),
              "--static", ip1,
              "--static", json.dumps({"host": ip2, "user": "ops", "port": 2222, "capabilities": "redis,gpu",
                                      "work": "/home/ops/work", "scratch": "/var/tmp/scratch"}),
              "--json", env=env)
    out = json.loads(res.stdout)
    assert [(n["index"], n["role"], n["capabilities"]) for n in out["nodes"]] == [
        (0, "head", ["redis"]), (1, "worker", []), (2, "worker", ["redis", "gpu"])]
    assert out["nodes"][2]["host"] == f"ops@{ip2}:2222"
    pins = (Path(env["VCA_HOME"]) / "static_known_hosts").read_text().splitlines()
    assert sorted(p.split()[0] for p in pins) == sorted([f"{ip0}:22", f"{ip1}:22", f"{ip2}:2222"])
    import yaml

    groups = yaml.safe_load(Path(vca("-c", name, "inventory", env=env).stdout.strip()).read_text())["all"]["children"]
    assert list(groups["cap_redis"]["hosts"]) == [f"{name}-0", f"{name}-2"]
    assert list(groups["cap_gpu"]["hosts"]) == [f"{name}-2"]
    # Again: the same hosts are no change.
    again = vca("create", name, "--identity", str(hosts.key), "--static", ip1, "--json", env=env)
    assert json.loads(again.stdout)["added"] == []


def test_exec_where_and_users(hosts: Hosts, static: Static) -> None:
    name, env, _ = static
    users = vca("-c", name, "exec", "--", "id -un", env=env).stdout
    assert [line.split()[-1] for line in users.strip().splitlines()] == ["root", "root", "ops"]
    redis = vca("-c", name, "exec", "--where", "redis", "--", "echo", "on", env=env).stdout
    assert f"{name}-0" in redis and f"{name}-2" in redis and f"{name}-1" not in redis
    both = vca("-c", name, "exec", "--where", "redis", "--where", "gpu", "--", "echo", "x", env=env).stdout
    assert f"{name}-2" in both and f"{name}-0" not in both
    named = vca("-c", name, "exec", "--node", "0,1", "--where", "redis", "--", "echo", "x", env=env).stdout
    assert f"{name}-0" in named and f"{name}-1" not in named and f"{name}-2" not in named
    none = vca("-c", name, "exec", "--where", "tpu", "--", "true", env=env, check=False)
    assert none.returncode == 2 and "no node with capability tpu" in none.stderr
    assert "redis, gpu" in none.stderr or "gpu, redis" in none.stderr


def test_inject_collect_setup(hosts: Hosts, static: Static, tmp_path: Path) -> None:
    name, env, _ = static
    repo = Path(__file__).resolve().parents[2]
    vca("-c", name, "inject", str(repo / "examples" / "hello"), env=env)
    vca("-c", name, "wait", "--timeout", "60", env=env)
    vca("-c", name, "collect", "result.txt", str(tmp_path / "out"), env=env)
    results = {i: (tmp_path / "out" / f"{name}-{i}" / "result.txt").read_text() for i in range(3)}
    assert all(f"index={i}\n" in results[i] and "nodes=3\n" in results[i] for i in range(3))
    assert f"ips={','.join(hosts.ips)}" in results[0]
    # the work path holds ops's releases; the scratch path is the job's VCA_SCRATCH
    assert "releases" in hosts.sh(2, "ls /home/ops/work/vca")
    scratch = vca("-c", name, "exec", "--node", "2", "--", ". /etc/vca/scratch 2>/dev/null; cat /etc/vca/scratch",
                  env=env).stdout
    assert "/var/tmp/scratch" in scratch
    role = tmp_path / "marker_role"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text(
        "---\n- name: Write a marker for the user\n  ansible.builtin.copy:\n    dest: /var/tmp/static-setup\n"
        "    content: \"{{ vca_role }} {{ ansible_user_id }}\\n\"\n    mode: \"0644\"\n")
    vca("-c", name, "setup", "--add", str(role), "--where", "gpu", env=env)
    assert hosts.sh(2, "cat /var/tmp/static-setup").strip() == "worker ops"
    assert "missing" in hosts.sh(0, "cat /var/tmp/static-setup 2>/dev/null || echo missing")


def test_changed_host_key_refused(hosts: Hosts, static: Static) -> None:
    _, env, _ = static
    pins = Path(env["VCA_HOME"]) / "static_known_hosts"
    good = pins.read_text()
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
    forged = "".join(f"{line.split()[0]} {other}\n"
                     if line.startswith(f"{hosts.ips[1]}:22 ") else line + "\n" for line in good.splitlines())
    pins.write_text(forged)
    res = vca("create", "other", "--identity", str(hosts.key), "--static", hosts.ips[1], env=env, check=False)
    assert res.returncode == 1 and f"host key of {hosts.ips[1]}:22 changed" in res.stderr
    assert f"vca forget-host {hosts.ips[1]}:22" in res.stderr
    assert not (Path(env["VCA_HOME"]) / "clusters" / "other").exists()
    vca("forget-host", f"{hosts.ips[1]}:22", env=env)
    assert f"{hosts.ips[1]}:22" not in pins.read_text()
    pins.write_text(good)


def test_static_refuses_remove_power_and_guard(static: Static) -> None:
    name, env, _ = static
    for argv in (("remove", "1", "--yes"), ("power", "off"), ("provision", "1"), ("guard", "--idle-stop", "30m")):
        res = vca("-c", name, *argv, env=env, check=False)
        assert res.returncode == 2, (argv, res.stderr)
        assert "provider static" in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_teardown_leaves_hosts_as_they_were(hosts: Hosts, static: Static) -> None:
    name, env, before = static
    vca("-c", name, "exec", "--", "~/vca/bin/vca-node status | grep -c release", env=env)
    vca("-c", name, "teardown", "--yes", env=env)
    assert not (Path(env["VCA_HOME"]) / "clusters" / name).exists()
    for i in range(3):
        after = hosts.sh(i, "rm -f /var/tmp/static-setup; " + SNAPSHOT)  # the user's role's file is the user's
        assert after == before[i], f"host {i}:\n{after}\n---- before:\n{before[i]}"
        assert hosts.sh(i, "systemctl is-system-running || true").strip() in ("running", "degraded")


def test_up_and_down_on_a_static_spec(hosts: Hosts, static: Static, tmp_path: Path) -> None:
    """The same hosts from a spec file: adopted by `vca up`, a host dropped from the list released,
    `vca down` leaves every host as it was."""
    _, env, before = static
    spec = tmp_path / "vca.yml"
    ip0, ip1, ip2 = hosts.ips
    listed = [f"root@{ip0}", f'{{host: "{ip1}", capabilities: [redis]}}',
              f'{{host: "{ip2}", user: ops, port: 2222}}']

    def write(entries: list[str]) -> None:
        spec.write_text(f"provider: static\nstatic:\n  identity: {hosts.key}\n  hosts:\n"
                        + "".join(f"    - {e}\n" for e in entries))

    def up(*extra: str) -> list[str]:
        out = json.loads(vca("-c", "stup", "up", str(spec), "--json", *extra, env=env).stdout)
        return [s["action"] for s in out["steps"]]

    write(listed)
    assert up("--plan") == ["create"]
    assert up() == ["create"]
    assert up() == []
    redis = vca("-c", "stup", "exec", "--where", "redis", "--", "echo", "x", env=env).stdout
    assert redis.strip() == "stup-1: x"
    write(listed[:2])
    assert up("--plan") == ["remove"]
    assert up() == ["remove"]
    assert hosts.sh(2, SNAPSHOT) == before[2]  # released: as it was, still running
    assert len(vca("-c", "stup", "exec", "--", "true", env=env).stderr.splitlines()) == 1
    out = json.loads(vca("-c", "stup", "down", str(spec), "--yes", "--json", env=env).stdout)
    assert sorted(out["removed"]) == ["stup-0", "stup-1"]
    for i in range(3):
        assert hosts.sh(i, "rm -f /var/tmp/static-setup; " + SNAPSHOT) == before[i]
