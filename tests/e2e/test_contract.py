"""One node contract on both inject paths (issue 10): `vca inject` (one ssh session per node) and
`vca run inject` (the Ansible play) give a job the same environment and the same files, VCA_SCRATCH
and VCA_DATA_BUCKET included, from the same package bytes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from helpers import vca

pytestmark = pytest.mark.lab

# The job dumps what the contract gave it: its VCA_* environment (NUL-separated, so that the lines of
# VCA_NODE_IPS stay with it; shown as base64), /etc/vca/cluster.json and the vca block of /etc/hosts.
LAUNCH = r"""#!/bin/sh
set -e
d="$HOME/contract-dump"
mkdir -p "$d"
env -0 | grep -z '^VCA_' | grep -zv '^VCA_RUN' | sort -z > "$d/env"  # VCA_RUN*: this start's own
cat /etc/vca/cluster.json > "$d/cluster.json"
sed -n '/^# BEGIN vca/,/^# END vca/p' /etc/hosts > "$d/hosts"
"""
SHOW = "cd ~/contract-dump && echo '== env' && base64 -w0 env && echo && echo '== cluster.json' && cat cluster.json " \
       "&& echo '== hosts' && cat hosts"


def make_pkg(root: Path) -> Path:
    root.mkdir(parents=True)
    launch = root / "vcloud-launch"
    launch.write_text(LAUNCH)
    launch.chmod(0o755)
    return root


def dumps(cluster: str, count: int) -> dict[str, str]:
    """Each node's dump, then removed so that the next path's job writes afresh."""
    out = vca("-c", cluster, "exec", "--", SHOW).stdout
    got: dict[str, list[str]] = {f"{cluster}-{i}": [] for i in range(count)}
    for line in out.splitlines():
        node, _, text = line.partition(": ")
        got[node].append(text)
    vca("-c", cluster, "exec", "--", "rm -rf ~/contract-dump")
    return {node: "\n".join(lines) for node, lines in got.items()}


def env_of(dump: str) -> dict[str, str]:
    text = base64.b64decode(dump.split("== env\n", 1)[1].split("\n== cluster.json", 1)[0]).decode()
    return dict(item.split("=", 1) for item in text.split("\0") if item)


def test_both_inject_paths_give_the_same_contract(cluster_name: str, vca_home: Path, tmp_path: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "3")
    # The contract variables, where Ansible reads them beside the cluster's inventory: every node, and
    # one node of its own.
    where = vca_home / "clusters" / c
    (where / "group_vars").mkdir()
    (where / "group_vars" / "all.yml").write_text("vca_scratch: /scratch\nvca_data_bucket: results-bucket\n")
    (where / "host_vars").mkdir()
    (where / "host_vars" / f"{c}-2.yml").write_text("vca_scratch: /mnt/fast\n")
    pkg = make_pkg(tmp_path / "pkg")

    vca("-c", c, "inject", str(pkg))
    vca("-c", c, "wait", "--timeout", "60")
    by_ssh = dumps(c, 3)
    vca("-c", c, "run", "inject", f"pkg={pkg}", "restart=true")
    vca("-c", c, "wait", "--timeout", "60")
    by_ansible = dumps(c, 3)

    assert by_ssh == by_ansible
    envs = {node: env_of(dump) for node, dump in by_ssh.items()}
    for node, env in envs.items():
        assert env["VCA_DATA_BUCKET"] == "results-bucket", env
        assert env["VCA_SCRATCH"] == ("/mnt/fast" if node == f"{c}-2" else "/scratch"), env
        assert env["VCA_HOSTNAME"] == node and env["VCA_CLUSTER"] == c
    ips = envs[f"{c}-0"]["VCA_NODE_IPS"].split("\n")
    assert len(ips) == 3 and len({e["VCA_RELEASE"] for e in envs.values()}) == 1
    doc = json.loads(by_ssh[f"{c}-1"].split("== cluster.json\n", 1)[1].split("\n== hosts", 1)[0])
    assert [(n["index"], n["name"], n["private_ip"]) for n in doc] == [(i, f"{c}-{i}", ips[i]) for i in range(3)]
    assert [f"{ips[i]}\t{c}-{i}" for i in range(3)] == by_ssh[f"{c}-1"].split("== hosts\n", 1)[1].splitlines()[1:4]
