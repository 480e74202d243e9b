"""Inject and run on real lab nodes: the node contract, releases, detached jobs, logs, tmux."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from helpers import VCA_ARGV, raw_ansible, vca

from vcloud_ansible import Cluster
from vcloud_ansible.release.install import JobOptions

pytestmark = pytest.mark.lab
HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


def make_pkg(root: Path, launch: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True)
    script = root / "vcloud-launch"
    script.write_text("#!/bin/sh\n" + launch + "\n")
    script.chmod(0o755)
    for name, text in (files or {}).items():
        (root / name).write_text(text)
    return root


def status(cluster: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(vca("-c", cluster, "status", "--json").stdout)
    return rows


def on_node(cluster: str, index: int, command: str) -> str:
    return vca("-c", cluster, "exec", "--node", str(index), "--", command).stdout.replace(
        f"{cluster}-{index}: ", "").strip()


def wait_for(predicate: object, what: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def test_hello_contract_reinject_and_grow(cluster_name: str) -> None:
    c = cluster_name
    vca("-c", c, "provision", "4")
    res = vca("-c", c, "inject", str(HELLO), "-e", "GREETING=hi there")
    assert "sent to 4 of 4 nodes" in res.stderr and "job started on 4" in res.stderr
    rows = status(c)
    ips = [str(r["address"]) for r in rows]
    assert "jobs finished on all 4 nodes" in vca("-c", c, "wait", "--timeout", "60").stderr
    assert all(r["job"] == "exited(0)" for r in status(c))
    release = rows[0]["release"]
    assert all(r["release"] == release for r in status(c))
    for i in range(4):
        result = on_node(c, i, "cat ~/vca/current/result.txt")
        assert result.splitlines() == [
            f"index={i}", "nodes=4", f"head={ips[0]}", f"hostname={c}-{i}", f"ips={','.join(ips)}",
            "greeting=hi there",
        ]
    # The contract files: cluster.json and /etc/hosts entries <cluster>-<index>.
    doc = json.loads(on_node(c, 2, "cat /etc/vca/cluster.json"))
    assert [(n["index"], n["name"], n["private_ip"]) for n in doc] == [(i, f"{c}-{i}", ips[i]) for i in range(4)]
    assert doc[0]["role"] == "head" and doc[3]["role"] == "worker"
    assert on_node(c, 1, f"getent hosts {c}-3").split()[0] == ips[3]
    env = on_node(c, 3, "cat ~/vca/job/env")
    assert f"VCA_RELEASE={release}" in env and "VCA_ROLE=worker" in env and f"VCA_CLUSTER={c}" in env
    assert "hello from node 3 of 4" in vca("-c", c, "logs", "3").stdout

    # Re-inject of the unchanged package sends nothing and changes nothing.
    again = Cluster(c).inject(HELLO, env={"GREETING": "hi there"})
    assert again.ok and again.changed_total == 0
    assert len(again.reports()) == 4 and all(not r["sent"] for r in again.reports().values())
    # The playbook (vca run inject, raw ansible-playbook) runs the same node-side script: after the
    # direct inject it finds nothing to send and nothing to change, the contract included.
    played = Cluster(c).run("inject", {"pkg": str(HELLO), **JobOptions(env={"GREETING": "hi there"}).extravars()})
    assert played.ok and played.changed_total == 0, played.hosts
    assert all(o.reports[-1]["job"] == "unchanged" for o in played.hosts.values())

    # Nodes added later receive the current release and run it, with the grown contract.
    vca("-c", c, "provision", "2")
    wait_for(lambda: [r["job"] for r in status(c)] == ["exited(0)"] * 6, "new nodes to run hello")
    assert all(r["release"] == release for r in status(c))
    assert on_node(c, 5, "cat ~/vca/current/result.txt").splitlines()[:2] == ["index=5", "nodes=6"]
    assert len(json.loads(on_node(c, 0, "cat /etc/vca/cluster.json"))) == 6


def test_running_job_untouched_until_restart_and_exit_codes(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "2")
    v1 = make_pkg(tmp_path / "v1", 'echo v1 started; exec sleep 600', {"data.txt": "version one\n"})
    vca("-c", c, "inject", str(v1))
    wait_for(lambda: all(r["job"] == "running" for r in status(c)), "v1 to run")
    r1 = status(c)[0]["release"]
    v1_sum = on_node(c, 0, f"sha256sum ~/vca/releases/{r1}/data.txt").split()[0]

    v2 = make_pkg(tmp_path / "v2", '[ "$VCA_NODE_INDEX" = 1 ] && exit 3; echo v2; exit 0',
                  {"data.txt": "version two\n"})
    res = vca("-c", c, "inject", str(v2))
    assert "still running" in res.stderr and "--restart" in res.stderr
    rows = status(c)
    r2 = rows[0]["release"]
    assert r2 != r1
    assert all(r["job"] == "running" and r["job_release"] == r1 for r in rows)  # v1 keeps running
    assert on_node(c, 0, f"sha256sum ~/vca/releases/{r1}/data.txt").split()[0] == v1_sum
    assert on_node(c, 0, "readlink ~/vca/current") == f"releases/{r2}"

    vca("-c", c, "inject", str(v2), "--restart", "--grace", "2")
    waited = vca("-c", c, "wait", "--timeout", "60", "--interval", "0.5", check=False)
    assert waited.returncode == 1 and f"{c}-1 (exited(3))" in waited.stderr and f"{c}-0 " not in waited.stderr
    assert [r["job"] for r in status(c)] == ["exited(0)", "exited(3)"]
    assert all(r["job_release"] == r2 for r in status(c))
    ps = on_node(c, 0, "ps -eo pid,pgid,args")
    assert "sleep 600" not in ps, ps  # v1 was stopped, all of it


def test_procs_stop_and_logs_follow(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "1")
    pkg = make_pkg(tmp_path / "p", 'echo "proc $VCA_PROC_INDEX of $VCA_NUM_PROCS on $VCA_CPUS cpus, '
                   'limit $(ulimit -v)" > "out-$VCA_PROC_INDEX"\n'
                   # process 0 cleans up on SIGTERM; process 1 ignores it and must be killed after the grace
                   'if [ "$VCA_PROC_INDEX" = 0 ]; then trap \'echo cleaned > cleanup-0; exit 5\' TERM; '
                   'else trap "" TERM; fi\n'
                   'i=0; while [ $i -lt 600 ]; do echo "tick $i"; i=$((i+1)); sleep 0.2; done')
    vca("-c", c, "inject", str(pkg), "--procs", "2", "--mem", "300M")
    wait_for(lambda: status(c)[0]["job"] == "running (2/2)", "two processes")
    assert on_node(c, 0, "cat ~/vca/current/out-0").startswith("proc 0 of 2 on ")
    assert on_node(c, 0, "cat ~/vca/current/out-1").startswith("proc 1 of 2 on ")
    assert on_node(c, 0, "cat ~/vca/current/out-1").endswith(f"limit {300 * 1024}")

    follow = subprocess.Popen(
        [*VCA_ARGV, "-c", c, "logs", "0", "-f", "--tail", "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        seen = [follow.stdout.readline() for _ in range(3)]  # a live stream: new ticks keep coming
        numbers = [int(line.split()[1]) for line in seen]
        assert numbers == sorted(numbers) and numbers[-1] > numbers[0]
    finally:
        follow.kill()
        follow.wait()

    vca("-c", c, "stop", "--grace", "1")
    assert status(c)[0]["job"] == "exited(5)"
    assert on_node(c, 0, "cat ~/vca/current/cleanup-0") == "cleaned"
    assert on_node(c, 0, "cat ~/vca/job/proc-0/exitcode ~/vca/job/proc-1/exitcode").split() == ["5", "137"]
    assert "tick" not in on_node(c, 0, "ps -eo args")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_attach_tmux(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "1")
    pkg = make_pkg(tmp_path / "t", 'echo "type a word:"; read word; echo "got $word"; sleep 600')
    vca("-c", c, "inject", str(pkg), "--tmux")
    wait_for(lambda: "type a word:" in on_node(c, 0, "tmux capture-pane -p -t vca-0"), "the tmux job")
    session = f"vcatest-{c}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30",
                    " ".join([*VCA_ARGV, "-c", c, "attach", "0", "--tmux"])], check=True)
    try:
        def pane() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                  text=True).stdout
        wait_for(lambda: "type a word:" in pane(), "attach to show the job's terminal")
        subprocess.run(["tmux", "send-keys", "-t", session, "banana", "Enter"], check=True)
        wait_for(lambda: "got banana" in pane(), "the job to read what was typed")
        assert "got banana" in on_node(c, 0, "tmux capture-pane -p -t vca-0")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_bare_node_gets_python(cluster_name: str) -> None:
    c = cluster_name
    vca("-c", c, "provision", "1")
    vca("-c", c, "exec", "--", "DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq python3-minimal "
        "python3.11-minimal >/dev/null 2>&1; ! command -v python3")
    vca("-c", c, "inject", str(HELLO))
    wait_for(lambda: status(c)[0]["job"] == "exited(0)", "hello on the bare node")
    assert on_node(c, 0, "command -v python3").strip() == "/usr/bin/python3"
    vca("-c", c, "run", "ping")  # modules run again


def test_bad_packages_rejected_before_anything_is_sent(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "1")
    # What provision put in ~/vca (the node agent and the node list, from the membership push); no bad
    # package may add to it.
    listing = "find ~/vca 2>/dev/null | sort"
    before = on_node(c, 0, listing)
    assert "/vca/releases/" not in before and "/vca/incoming/" not in before  # no release, no package
    noexec = make_pkg(tmp_path / "noexec", "true")
    (noexec / "vcloud-launch").chmod(0o644)
    nolaunch = tmp_path / "nolaunch"
    nolaunch.mkdir()
    (nolaunch / "run.sh").write_text("true\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tf:
        tf.add(HELLO / "vcloud-launch", arcname="vcloud-launch")
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 0
        tf.addfile(info)
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tf:
        tf.add(HELLO / "vcloud-launch", arcname="vcloud-launch")
        info = tarfile.TarInfo("passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    cases = {
        str(tmp_path / "missing"): "does not exist",
        str(noexec): "not executable",
        str(nolaunch): "vcloud-launch",
        str(empty): "empty",
        str(evil): "..",
        str(link): "passwd",
    }
    for pkg, words in cases.items():
        res = vca("-c", c, "inject", pkg, check=False)
        assert res.returncode != 0, pkg
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vca: error:") and words in lines[0], (pkg, res.stderr)
    res = vca("-c", c, "inject", str(HELLO), "--node", "7", check=False)
    assert res.returncode == 2 and "has no node 7" in res.stderr
    assert on_node(c, 0, listing) == before  # nothing reached the node


def test_package_through_bucket_and_raw_playbook(cluster_name: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With a bucket, the package is uploaded once and nodes pull it through a presigned URL (moto,
    served on the lab bridge's host address: the only address nodes can reach)."""
    import boto3
    from moto_fixtures import aws_env, start_moto

    from vcloud_ansible.lab.config import LabConfig

    c = cluster_name
    vca("-c", c, "provision", "2")
    gateway = LabConfig.from_env().gateway
    server = start_moto(tmp_path / "moto", ami_validation=False, host=gateway)
    try:
        env = aws_env(server.url, tmp_path)
        env["NO_PROXY"] = env["no_proxy"] = f"127.0.0.1,localhost,{gateway}"
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        boto3.client("s3").create_bucket(Bucket="pkgs")
        res = vca("-c", c, "inject", str(HELLO), "--bucket", "pkgs")
        assert "fetched from the package bucket by 2 of 2 nodes" in res.stderr
        vca("-c", c, "wait", "--timeout", "60")
        assert [on_node(c, i, "head -1 ~/vca/current/result.txt") for i in (0, 1)] == ["index=0", "index=1"]
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="pkgs")["Contents"]]
        release = status(c)[0]["release"]
        assert keys == [f"{c}/releases/{release}.tar.gz"]
        assert "AWS_SECRET_ACCESS_KEY" not in on_node(c, 0, "cat ~/vca/job/env")

        # The playbook path with a bucket: vca_pack uploads once, the nodes fetch.
        pkg2 = make_pkg(tmp_path / "b2", 'echo "b2 $VCA_NODE_INDEX" > b2.txt')
        played = Cluster(c).run("inject", {"pkg": str(pkg2), "bucket": "pkgs", "restart": True})
        assert played.ok, played.hosts
        assert all(o.reports[-1]["via"] == "s3" and o.reports[-1]["sent"] for o in played.hosts.values())
        wait_for(lambda: all(r["job"] == "exited(0)" and r["release"] != release for r in status(c)), "b2")
        assert on_node(c, 1, "cat ~/vca/current/b2.txt") == "b2 1"
    finally:
        server.stop()

    # The same playbook with raw ansible-playbook: a new package, restarting the job.
    pkg = make_pkg(tmp_path / "raw", 'echo "raw $VCA_NODE_INDEX" > raw.txt')
    inv = vca("-c", c, "inventory").stdout.strip()
    raw = raw_ansible("ansible-playbook", "-i", inv, "playbooks/inject.yml", "-e", f"pkg={pkg}",
                      "-e", "restart=true")
    assert raw.returncode == 0, raw.stdout[-3000:]
    assert raw.stdout.count("changed=1") == 2
    wait_for(lambda: all(r["job"] == "exited(0)" for r in status(c)), "the raw-injected job")
    assert on_node(c, 1, "cat ~/vca/current/raw.txt") == "raw 1"



def test_node_down_gets_the_release_on_the_next_inject(cluster_name: str, lab_env: Path) -> None:
    from vcloud_ansible.lab.registry import Registry

    c = cluster_name
    vca("-c", c, "provision", "2")
    netns = next(n.netns for n in Registry(lab_env).nodes(c) if n.index == 1)
    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    try:
        started = time.monotonic()
        res = vca("-c", c, "inject", str(HELLO), check=False)
        assert time.monotonic() - started < 60  # ssh's ConnectTimeout, not a hang
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    last = res.stderr.strip().splitlines()[-1]
    assert res.returncode != 0 and f"inject failed on 1 of 2 nodes: {c}-1 (unreachable" in last, res.stderr
    wait_for(lambda: status(c)[0]["job"] == "exited(0)", "hello on the node that answered")

    res = vca("-c", c, "inject", str(HELLO))  # the same command again completes the set
    assert "sent to 1 of 2 nodes (the other 1 had it)" in res.stderr
    wait_for(lambda: [r["job"] for r in status(c)] == ["exited(0)"] * 2, "hello on both nodes")
    assert on_node(c, 1, "cat ~/vca/current/result.txt").splitlines()[:2] == ["index=1", "nodes=2"]


# Stands in for systemd on cgroup v1 failing a unit at "step CGROUP" (exit 219): systemd accepts the
# unit and its process dies before it runs. Here the first start of each process of a job fails that
# way, and with /etc/vca-test-always-fail every start does.
DYING_SYSTEMD_RUN = r"""#!/bin/sh
for a in "$@"; do case "$a" in --unit=*) unit=${a#--unit=} ;; esac; last2="${last1:-} $a"; last1=$a; done
seen="/tmp/vca-test-seen-$(echo "$last2" | tr ' ' '-')"
if [ ! -f "$seen" ] || [ -f /etc/vca-test-always-fail ]; then
  touch "$seen"
  exec /usr/bin/systemd-run --quiet --collect --unit="$unit" /bin/sh -c 'exit 219'
fi
exec /usr/bin/systemd-run "$@"
"""


def test_process_whose_unit_dies_before_it_runs_is_started_again(cluster_name: str, tmp_path: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "1")
    vca("-c", c, "exec", "--", f"cat > /usr/local/bin/systemd-run <<'END'\n{DYING_SYSTEMD_RUN}END\n"
        "chmod +x /usr/local/bin/systemd-run")
    pkg = make_pkg(tmp_path / "once", 'echo "$VCA_PROC_INDEX" >> /tmp/ran')
    res = vca("-c", c, "inject", str(pkg), "--procs", "3")
    assert "sent to 1 of 1 nodes, job started on 1 (" in res.stderr, res.stderr
    wait_for(lambda: status(c)[0]["job"] == "exited(0)", "three processes, each started twice")
    # Each process ran exactly once, though each first start died (three units ended with 219).
    assert sorted(on_node(c, 0, "cat /tmp/ran").split()) == ["0", "1", "2"]
    died = on_node(c, 0, "journalctl --no-pager -u 'vca-job-*' | grep -c 'status=219' || true")
    assert died == "3", died

    # A process that never starts fails the inject on that node in one line, not as a silent "lost".
    on_node(c, 0, "touch /etc/vca-test-always-fail")
    res = vca("-c", c, "inject", str(pkg), "--restart", check=False)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert f"{c}-0 (release " in last and "is installed, but the job did not start" in last, res.stderr
