"""The foundation end to end: real lab nodes, real SSH, real Ansible, through the real CLI."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import VCA_ARGV, host_leftovers, raw_ansible, vca

from vcloud_ansible.lab.registry import Registry

pytestmark = pytest.mark.lab


def _status(cluster: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(vca("-c", cluster, "status", "--json").stdout)
    return rows


def test_provision_grow_exec_connect_ansible_teardown(
    cluster_name: str, lab_env: Path, tmp_path: Path
) -> None:
    c = cluster_name
    vca("-c", c, "provision", "3")
    rows = _status(c)
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert all(r["state"] == "up" for r in rows)
    assert len({r["address"] for r in rows}) == 3

    # Each node is its own host running systemd, with its own name, address and machine-id.
    out = vca("-c", c, "exec", "--all", "--",
              "echo $(hostname) $(systemctl is-system-running --wait) $(cat /etc/machine-id) "
              "$(systemctl --failed --no-legend --plain | cut -d' ' -f1 | tr '\\n' ' ')").stdout
    lines = sorted(line.split(": ", 1)[1] for line in out.splitlines())
    assert [line.split()[0] for line in lines] == [f"{c}-0", f"{c}-1", f"{c}-2"]
    assert all(line.split()[1] == "running" for line in lines), lines
    assert len({line.split()[2] for line in lines}) == 3

    # Growing continues the indexes.
    res = vca("-c", c, "provision", "2")
    assert "added nodes 3-4 (5 nodes in all)" in res.stderr
    assert [r["index"] for r in _status(c)] == [0, 1, 2, 3, 4]

    # exec reports one exit code per node; a failure on one node fails the command and names it.
    res = vca("-c", c, "exec", "--all", "--", "hostname")
    assert sorted(res.stdout.splitlines()) == sorted(f"{c}-{i}: {c}-{i}" for i in range(5))
    assert "5 nodes: 5 ok" in res.stderr
    res = vca("-c", c, "exec", "--", f"test $(hostname) != {c}-3", check=False)
    assert res.returncode != 0
    assert f"{c}-3 (exit 1)" in res.stderr and "4 ok, 1 failed" in res.stderr
    res = vca("-c", c, "exec", "--node", "1,4", "--", "hostname")
    assert sorted(res.stdout.splitlines()) == [f"{c}-1: {c}-1", f"{c}-4: {c}-4"]

    # --timeout abandons a command that runs on, though a control master holds its session open.
    started = time.monotonic()
    res = vca("-c", c, "exec", "--node", "0", "--timeout", "2", "--", "echo begun; sleep 60", check=False)
    assert time.monotonic() - started < 15, res.stderr
    assert res.returncode != 0 and f"{c}-0 (timed out)" in res.stderr and f"{c}-0: begun" in res.stdout

    # SIGTERM (or Ctrl-C) ends `vca exec` at once, not when the commands end.
    proc = subprocess.Popen([*VCA_ARGV, "-c", c, "exec", "--", "echo begun; sleep 60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        proc.terminate()
        signalled = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and err.rstrip().endswith("vca: terminated"), err
    assert time.monotonic() - signalled < 10

    # connect N -- CMD runs on node N.
    assert vca("-c", c, "connect", "2", "--", "hostname").stdout.strip() == f"{c}-2"

    # Plain ssh with the generated config, from a file and from a pipe (ssh closes inherited fds,
    # so `ssh -F <(vca ssh-config)` cannot work; -F /dev/stdin can).
    cfg = tmp_path / "ssh_config"
    cfg.write_text(vca("-c", c, "ssh-config").stdout)
    ok = subprocess.run(["ssh", "-F", str(cfg), f"{c}-1", "hostname"], capture_output=True, text=True)
    assert ok.stdout.strip() == f"{c}-1", ok.stderr
    piped = subprocess.run(["ssh", "-F", "/dev/stdin", f"{c}-1", "true"], input=cfg.read_text(),
                           capture_output=True, text=True)
    assert piped.returncode == 0, piped.stderr

    # Raw ansible-playbook with the cluster's inventory (host keys checked against known_hosts).
    inv = vca("-c", c, "inventory").stdout.strip()
    raw = raw_ansible("ansible-playbook", "-i", inv, "playbooks/ping.yml")
    assert raw.returncode == 0, raw.stdout + raw.stderr
    # The validation play comes first (it opens no connection); then the ping reaches every node.
    ping = raw.stdout.split("TASK [Reach the node and run Python there]", 1)[1].split("PLAY RECAP", 1)[0]
    assert sorted(line for line in ping.splitlines() if line.startswith("ok: [")) == [
        f"ok: [{c}-{i}]" for i in range(5)]
    assert raw.stdout.count("unreachable=0") == 5 and raw.stdout.count("failed=0") == 5
    groups = raw_ansible("ansible-inventory", "-i", inv, "--list")
    inventory = json.loads(groups.stdout)
    assert inventory["head"]["hosts"] == [f"{c}-0"]
    assert sorted(inventory["workers"]["hosts"]) == [f"{c}-{i}" for i in range(1, 5)]
    assert inventory["_meta"]["hostvars"][f"{c}-3"]["vca_node_index"] == 3

    # vca run: the same playbook through ansible-runner.
    res = vca("-c", c, "run", "ping")
    assert res.returncode == 0

    # Teardown leaves nothing of the cluster on the host.
    veths = [n.veth for n in Registry(lab_env).nodes(c)]
    assert len(veths) == 5
    vca("-c", c, "teardown", "--yes")
    assert host_leftovers(c) == []
    assert not any(Path("/sys/class/net", v).exists() for v in veths)
    assert not Path("/sys/class/net", os.environ["VCA_LAB_BRIDGE"]).exists()  # no cluster left: the bridge is gone too
    assert Registry(lab_env).nodes(c) == []
    res = vca("-c", c, "teardown", "--yes")  # idempotent
    assert "nothing to tear down" in res.stderr
    assert vca("-c", c, "status", check=False).returncode != 0


def test_two_clusters_do_not_interfere(cluster_name: str, lab_env: Path, vca_home: Path) -> None:
    a, b = cluster_name, cluster_name + "b"
    try:
        vca("-c", a, "provision", "2")
        vca("-c", b, "provision", "2")
        ips_a = {r["address"] for r in _status(a)}
        ips_b = {r["address"] for r in _status(b)}
        assert not ips_a & ips_b
        assert sorted(vca("-c", b, "exec", "--", "hostname").stdout.split()) == sorted(
            [f"{b}-0:", f"{b}-0", f"{b}-1:", f"{b}-1"])
        clusters = vca("clusters").stdout
        assert a in clusters and b in clusters
        vca("-c", a, "teardown", "--yes")
        assert host_leftovers(a) == []
        assert all(r["state"] == "up" for r in _status(b))  # b is untouched
        assert Path("/sys/class/net", os.environ["VCA_LAB_BRIDGE"]).exists()  # b still uses the bridge
    finally:
        from vcloud_ansible.lab.manager import Lab

        Lab().destroy(b, str(vca_home))
    assert host_leftovers(b) == []


def test_reboot_restarts_and_dead_node_shows_down(cluster_name: str, lab_env: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "2")
    before = vca("-c", c, "exec", "--node", "1", "--", "cat /proc/sys/kernel/random/boot_id; "
                 "ps -o lstart= -p 1").stdout
    vca("-c", c, "exec", "--node", "1", "--", "systemctl reboot", check=False)
    deadline = 60

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        res = vca("-c", c, "exec", "--node", "1", "--timeout", "5", "--",
                  "cat /proc/sys/kernel/random/boot_id; ps -o lstart= -p 1", check=False)
        if res.returncode == 0 and res.stdout != before:
            break
        time.sleep(0.5)
    else:
        pytest.fail("node 1 did not come back after a guest reboot")
    assert [r["state"] for r in _status(c)] == ["up", "up"]

    # Kill node 0's systemd-nspawn by its PID (found from the lab registry), as the OOM killer or a
    # stray `kill` would: the guest lives on and serves SSH, so status must not call it down.
    head = next(n for n in Registry(lab_env).nodes(c) if n.index == 0)
    nspawn_pid = int((Path(head.dir) / "nspawn.pid").read_text())
    os.kill(nspawn_pid, signal.SIGKILL)
    end = time.monotonic() + 10
    while Path(f"/proc/{nspawn_pid}").exists() and time.monotonic() < end:
        time.sleep(0.1)
    assert vca("-c", c, "exec", "--node", "0", "--timeout", "10", "--", "hostname").stdout == f"{c}-0: {c}-0\n"
    rows = _status(c)
    assert [r["state"] for r in rows] == ["up", "up"], rows
    assert [r["supervised"] for r in rows] == [False, True], rows
    res = vca("-c", c, "status")
    assert f"{c}-0 runs without its lab supervisor" in res.stderr, res.stderr

    # Kill node 1 from outside (as a crash would): status shows it down, exec names it.
    node = next(n for n in Registry(lab_env).nodes(c) if n.index == 1)
    from vcloud_ansible.lab import node as labnode

    labnode.stop([node], grace=0)
    assert [r["state"] for r in _status(c)] == ["up", "down"]
    res = vca("-c", c, "exec", "--", "true", check=False)
    assert res.returncode != 0 and f"{c}-1" in res.stderr
    # Teardown removes both, the unsupervised guest of node 0 included: nothing of them is left.
    guest = [int(p) for p in subprocess.run(["ip", "netns", "pids", head.netns], capture_output=True,
                                            text=True).stdout.split()]
    assert guest, "node 0's guest should still run"
    vca("-c", c, "teardown", "--yes")
    assert host_leftovers(c) == []
    from vcloud_ansible.lab.procs import alive

    assert [p for p in guest if alive(p)] == []  # zombies count as gone: the host's init reaps them




def _signal_after(cluster: str, line: str, signum: int, hold_ssh: bool = False) -> tuple[int, str, float]:
    """Start `vca provision 3` and send ``signum`` once stderr shows ``line``; the exit code, stderr and
    the seconds from the signal to the exit.

    ``hold_ssh`` makes the lab's node addresses unreachable from this host (two "unreachable" routes,
    more specific than the bridge's), so that the wait for their SSH lasts until the signal comes,
    however fast this machine is. Nothing is sent anywhere meanwhile: connecting fails at once."""
    net = ipaddress.ip_network(os.environ["VCA_LAB_SUBNET"])
    holds = [str(half) for half in net.subnets(prefixlen_diff=1)] if hold_ssh else []
    for half in holds:
        subprocess.run(["ip", "route", "add", "unreachable", half], check=True)
    proc = subprocess.Popen([*VCA_ARGV, "-c", cluster, "provision", "3"], stderr=subprocess.PIPE, text=True,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        for _ in range(20):  # a handful of progress lines come first; bounded
            seen.append(proc.stderr.readline())
            if line in seen[-1]:
                proc.send_signal(signum)
                signalled = time.monotonic()
                break
        else:
            pytest.fail(f"never saw {line!r}: {seen}")
        rest = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for half in holds:
            subprocess.run(["ip", "route", "del", "unreachable", half], capture_output=True, check=False)
    return proc.returncode, "".join(seen) + rest, time.monotonic() - signalled


def test_interrupted_provision_leaves_nothing_behind(cluster_name: str, lab_env: Path) -> None:
    """Ctrl-C while nodes boot, SIGTERM while waiting for their SSH: either way none of them stays."""
    c = cluster_name
    rc, err, _ = _signal_after(c, "booting 3 lab nodes", signal.SIGINT)
    assert rc == 130 and err.rstrip().endswith("vca: interrupted"), err
    assert host_leftovers(c) == [] and Registry(lab_env).nodes(c) == []
    assert c not in vca("clusters").stdout

    rc, err, took = _signal_after(c, "waiting for SSH", signal.SIGTERM, hold_ssh=True)
    assert rc == 143 and "interrupted: removing the 3 new nodes" in err, err
    assert took < 20, f"{took:.0f} s from SIGTERM to exit: the wait for SSH did not stop at once"
    assert err.rstrip().endswith("vca: terminated"), err
    assert host_leftovers(c) == [] and Registry(lab_env).nodes(c) == []
    assert c not in vca("clusters").stdout
