"""Membership (issue 13) on one 3-node lab cluster: node-to-node SSH and names from the first
provision on, host keys pinned, an MPI ring over /etc/vca/hostfile, and a node added to a cluster
whose jobs run: every node learns it, no job restarts, vca-on-change runs with the new list."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import vca

pytestmark = pytest.mark.lab

NODES = 3
# Debian's openmpi: the compiler and headers on node 0 only (the ring is built there and copied), the
# runtime on every node. Bounded, retried once (the lab's apt proxy may stall on its first parallel use).
MPI_INSTALL = r"""
pk="openmpi-bin"; case "$(hostname)" in *-0) pk="$pk libopenmpi-dev gcc libc6-dev" ;; esac
for try in 1 2; do
  timeout -s KILL 90 apt-get -q update > /tmp/apt-update.log 2>&1 &&
  DEBIAN_FRONTEND=noninteractive timeout -s KILL 240 apt-get -q -y --no-install-recommends install $pk \
    > /tmp/apt-install.log 2>&1 && exit 0
done
tail -n 20 /tmp/apt-install.log /tmp/apt-update.log; exit 1
"""

RING_C = r"""
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int rank, size, token;
    char host[256];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    gethostname(host, sizeof host);
    if (rank == 0) {
        token = 1;
        MPI_Send(&token, 1, MPI_INT, 1 % size, 0, MPI_COMM_WORLD);
        MPI_Recv(&token, 1, MPI_INT, size - 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        printf("ring of %d ranks: token %d back at rank 0 on %s\n", size, token, host);
    } else {
        MPI_Recv(&token, 1, MPI_INT, rank - 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        printf("rank %d on %s got token %d\n", rank, host, token);
        fflush(stdout);
        token++;
        MPI_Send(&token, 1, MPI_INT, (rank + 1) % size, 0, MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
}
"""

# Node 0 builds the ring, copies it to the other nodes (node-to-node SSH, names from /etc/hosts) and
# runs it over the hostfile, one rank per node; the other nodes have nothing to do.
MPI_LAUNCH = r"""#!/bin/sh
set -e
[ "$VCA_NODE_INDEX" = 0 ] || exit 0
mpicc -O2 -o ring ring.c
for h in $(awk '{print $1}' /etc/vca/hostfile); do
  [ "$h" = "$(hostname)" ] || scp -q ring "$h:/tmp/ring"
done
cp ring /tmp/ring
mpirun --allow-run-as-root --hostfile /etc/vca/hostfile -np 3 --map-by node /tmp/ring > mpi.out 2> mpi.err
"""

# A job that runs until stopped, and a vca-on-change that records what it was given.
SLEEP_LAUNCH = "#!/bin/sh\necho $$ > \"$HOME/job.pid\"\nexec sleep 900\n"
ON_CHANGE = "#!/bin/sh\n{ echo \"called with $1\"; cat \"$1\"; } > \"$HOME/on-change.seen\"\n"


def _pkg(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
        if not name.endswith(".c"):
            (root / name).chmod(0o755)
    return root


@pytest.fixture(scope="module")
def shared(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(cluster, env): a 3-node lab cluster with openmpi installed, its own VCA_HOME."""
    from conftest import module_lab_cluster

    with module_lab_cluster(lab_dir, tmp_path_factory.mktemp("member-home"), "m", NODES) as shared:
        yield shared


def sv(shared: tuple[str, dict[str, str]], *args: str, check: bool = True,
       timeout: float = 300) -> subprocess.CompletedProcess[str]:
    c, env = shared
    return vca("-c", c, *args, env=env, check=check, timeout=timeout)


def on(shared: tuple[str, dict[str, str]], node: int, command: str, check: bool = True) -> str:
    """``command``'s output on ``node``, without the `<node>: ` prefixes."""
    res = sv(shared, "exec", "-n", str(node), "--", command, check=check)
    return "\n".join(line.split(": ", 1)[1] if ": " in line else "" for line in res.stdout.splitlines()
                     if line.startswith(f"{shared[0]}-{node}:"))


def test_nodes_reach_each_other_right_after_provision(shared: Any) -> None:
    c, env = shared
    assert on(shared, 0, f"ssh {c}-2 hostname") == f"{c}-2"
    ips = [n["private_ip"] for n in json.loads(on(shared, 0, "cat /etc/vca/cluster.json"))]
    assert len(ips) == NODES
    assert on(shared, 2, f"ssh {ips[1]} hostname") == f"{c}-1"  # by private address too
    # The cluster's own key: 0600 here and on the nodes, not the key vca logs in with.
    state = Path(env["VCA_HOME"]) / "clusters" / c
    assert (state / "member_ed25519").stat().st_mode & 0o777 == 0o600
    assert (state / "member_ed25519.pub").read_text() != (state / "id_ed25519.pub").read_text()
    assert on(shared, 1, f"stat -c %a ~/.ssh/vca-{c} ~/.ssh/vca-{c}.known_hosts").split() == ["600", "600"]
    hostfile = on(shared, 0, "cat /etc/vca/hostfile").splitlines()
    assert [line.split()[0] for line in hostfile] == [f"{c}-{i}" for i in range(NODES)]
    assert all(line.split()[1].startswith("slots=") and int(line.split("=")[1]) >= 1 for line in hostfile)
    assert on(shared, 1, f"getent hosts {c}-0").split()[0] == ips[0]


def test_changed_host_key_is_refused(shared: Any) -> None:
    c, _ = shared
    # Node 2 gets new host keys (the old ones kept aside); node 0 must refuse it.
    on(shared, 2, "mkdir -p /root/hk && cp -a /etc/ssh/ssh_host_* /root/hk/ && rm -f /etc/ssh/ssh_host_* "
                  "&& ssh-keygen -A >/dev/null && systemctl reload ssh")
    try:
        res = sv(shared, "exec", "-n", "0", "--", f"ssh {c}-2 hostname 2>&1", check=False)
        assert res.returncode != 0
        assert "Host key verification failed" in res.stdout or "IDENTIFICATION HAS CHANGED" in res.stdout, res.stdout
    finally:  # node 0 puts the old keys back, ignoring the changed key on purpose (vca's own pin refuses it too)
        on(shared, 0, f"ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null {c}-2 "
                      "'cp -a /root/hk/ssh_host_* /etc/ssh/ && rm -rf /root/hk && systemctl reload ssh'")
    assert on(shared, 0, f"ssh {c}-2 hostname") == f"{c}-2"


def test_mpi_ring_over_the_hostfile(shared: Any, tmp_path: Path) -> None:
    res = sv(shared, "exec", "--timeout", "420", "--", MPI_INSTALL, check=False, timeout=480)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    pkg = _pkg(tmp_path / "mpi", {"vcloud-launch": MPI_LAUNCH, "ring.c": RING_C})
    sv(shared, "inject", str(pkg))
    res = sv(shared, "wait", "--timeout", "120", check=False)
    if res.returncode != 0:
        err = on(shared, 0, "cat ~/vca/current/mpi.err; tail -n 20 ~/vca/current/vca-job-0.log", check=False)
        raise AssertionError(f"{res.stdout}\n{res.stderr}\n{err}")
    sv(shared, "collect", "mpi.out", str(tmp_path / "results"), "-n", "0")
    out = (tmp_path / "results" / f"{shared[0]}-0" / "mpi.out").read_text()
    assert f"ring of 3 ranks: token 3 back at rank 0 on {shared[0]}-0" in out, out
    for i in (1, 2):
        assert f"rank {i} on {shared[0]}-{i} got token {i}" in out, out


def test_added_node_reaches_running_nodes(shared: Any, tmp_path: Path) -> None:
    c, _ = shared
    pkg = _pkg(tmp_path / "sleeper", {"vcloud-launch": SLEEP_LAUNCH, "vca-on-change": ON_CHANGE})
    sv(shared, "inject", str(pkg), "--restart")
    pids = {}
    for i in range(NODES):
        for _ in range(50):
            pid = on(shared, i, "cat ~/job.pid 2>/dev/null || true")
            if pid:
                break
        pids[i] = pid
    assert all(pids.values()), pids

    sv(shared, "provision", "1")

    for i in range(NODES):
        listed = json.loads(on(shared, i, "cat /etc/vca/cluster.json"))
        assert [n["name"] for n in listed] == [f"{c}-{j}" for j in range(NODES + 1)]
        hostfile = on(shared, i, "cat /etc/vca/hostfile").splitlines()
        assert hostfile[-1].startswith(f"{c}-3 slots=")
        assert on(shared, i, "cat ~/job.pid") == pids[i]  # the job was not restarted
        assert on(shared, i, f"kill -0 {pids[i]} && echo alive") == "alive"
        seen = on(shared, i, "cat ~/on-change.seen")
        assert seen.startswith("called with /etc/vca/cluster.json"), seen
        assert f'"name": "{c}-3"' in seen
        assert on(shared, i, f"ssh {c}-3 hostname") == f"{c}-3"
    assert on(shared, 3, f"ssh {c}-0 hostname") == f"{c}-0"


def test_heal_brings_a_dead_node_back_under_its_index(shared: Any) -> None:
    c, env = shared
    res = sv(shared, "heal")
    assert "nothing to heal" in res.stderr, res.stderr
    from vcloud_ansible.lab import node as labnode
    from vcloud_ansible.lab.registry import Registry

    old_key = on(shared, 0, f"cat ~/.ssh/vca-{c}.known_hosts | grep '^{c}-1,'")
    dead = next(n for n in Registry(Path(env["VCA_LAB_DIR"])).nodes(c) if n.index == 1)
    labnode.stop([dead], grace=0)  # the machine dies (as a crash would)
    assert [r["state"] for r in json.loads(sv(shared, "status", "--json", check=False).stdout)][1] == "down"

    healed = json.loads(sv(shared, "heal", "--json").stdout)
    assert [n["name"] for n in healed] == [f"{c}-1"]
    rows = json.loads(sv(shared, "status", "--json").stdout)
    assert [r["state"] for r in rows] == ["up"] * (NODES + 1), rows
    assert rows[1]["role"] == "worker"
    # It runs the cluster's release (the sleeper) again, and the others reach it by its new host key.
    assert on(shared, 1, "kill -0 $(cat ~/job.pid) && echo alive") == "alive"
    assert on(shared, 0, f"grep '^{c}-1,' ~/.ssh/vca-{c}.known_hosts") != old_key
    for i in (0, 2, 3):
        assert on(shared, i, f"ssh {c}-1 hostname") == f"{c}-1"
    assert on(shared, 1, f"ssh {c}-0 hostname") == f"{c}-0"
    assert "nothing to heal" in sv(shared, "heal").stderr
