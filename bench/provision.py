"""EC2 provision and teardown on a moto server: API calls and wall time, vca against the stock path.

vca: the read-only checks, then playbooks/internal/provision.yml (key pair, security group, launch template,
one RunInstances for the batch, one CreateTags per node for its index, a poll until running), and
playbooks/internal/teardown.yml (TerminateInstances in batches of up to 1000, a poll until gone, the group,
key pair and template deleted, a check that nothing tagged is left).

Stock: the same key pair and group, then amazon.aws.ec2_instance with exact_count and the cluster
tag filter, which compares every instance with its parameters; teardown with ec2_instance
state=absent. It gives no per-node index, so it does less than vca.

Every EC2 request is counted from moto's request recording. The SSH wait is not part of either
(moto instances run no sshd). Targets: vca at most 3 calls per node provisioned, at most one
TerminateInstances call per 1000 nodes.

    python bench/provision.py [--nodes 10,50,200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import median, table, write_results

from tests.moto_fixtures import AMI, AWS_UNSET, MotoServer, aws_env, start_moto
from vcloud_ansible import paths
from vcloud_ansible.providers.ec2.provider import Ec2Provider
from vcloud_ansible.state import ClusterState

CALLS_PER_NODE_TARGET = 3.0
STOCK_PLAYBOOK = Path(__file__).resolve().parent / "stock_ec2.yml"
SETTINGS = {"region": "us-east-1", "owner": "bench@vca", "image": AMI, "instance_type": "t3.micro",
            "user": "root", "ssh_via": "tag", "ssh_cidrs": ["203.0.113.7/32"]}


def _quiet(_msg: str) -> None:
    pass


def fresh(moto: MotoServer) -> None:
    """No resources, and moto's EC2 back end built again before the clock starts (its first call in a
    region loads the AMI and instance-type catalogues, seconds that EC2 itself never spends)."""
    moto.reset()
    ec2 = moto.ec2()
    ec2.describe_images(ImageIds=[AMI])
    ec2.describe_instance_types(InstanceTypes=["t3.micro"])
    moto.reset_calls()


def warm(moto: MotoServer, home: Path) -> None:
    """One untimed round of both paths: imports and caches of moto, Ansible and boto3 are hot."""
    fresh(moto)
    vca_run(moto, home, 1, -1)
    fresh(moto)
    stock_run(moto, home, 1, -1)


def vca_run(moto: MotoServer, home: Path, nodes: int, run: int) -> dict[str, Any]:
    state = ClusterState(f"bench{nodes}-{run}", home)
    state.create("ec2", dict(SETTINGS))
    provider = Ec2Provider()
    moto.reset_calls()
    start = time.perf_counter()
    launched = provider.launch(state, nodes, _quiet)
    up = time.perf_counter() - start
    up_calls = moto.calls()
    assert len(launched) == nodes, f"launched {len(launched)} of {nodes}"
    moto.reset_calls()
    start = time.perf_counter()
    provider.destroy(state, None, _quiet)
    down = time.perf_counter() - start
    return {"provision": {"seconds": up, "calls": sum(up_calls.values()), "by_action": dict(up_calls)},
            "teardown": {"seconds": down, "calls": sum(moto.calls().values()), "by_action": dict(moto.calls())}}


def stock_run(moto: MotoServer, home: Path, nodes: int, run: int) -> dict[str, Any]:
    cluster = f"stock{nodes}-{run}"
    state = ClusterState(cluster, home)
    state.create("ec2", dict(SETTINGS))
    out: dict[str, Any] = {}
    for phase in ("provision", "teardown"):
        moto.reset_calls()
        start = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-m", "ansible.cli.playbook", "-i", str(paths.resource_root() / "inventory" /
                                                                     "localhost.yml"), str(STOCK_PLAYBOOK),
             "-e", f"cluster={cluster}", "-e", f"count={nodes}", "-e", f"image={AMI}", "-e", f"phase={phase}",
             "-e", f"public_key='{state.public_key()}'"],
            capture_output=True, text=True, check=False,
            env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": paths.collections_path(), "ANSIBLE_NOCOLOR": "1"},
        )
        seconds = time.perf_counter() - start
        if res.returncode != 0:
            raise RuntimeError(f"stock {phase} failed: {res.stdout[-3000:]}")
        calls = moto.calls()
        out[phase] = {"seconds": seconds, "calls": sum(calls.values()), "by_action": dict(calls)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="10,50,200", help="cluster sizes, comma separated")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size and path (medians)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.nodes.split(",")]
    rows: list[list[str]] = []
    results: list[dict[str, Any]] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="vca-bench-ec2-") as tmp:
        tmpdir = Path(tmp)
        moto = start_moto(tmpdir / "moto")
        saved = dict(os.environ)
        try:
            for name in AWS_UNSET:
                os.environ.pop(name, None)
            os.environ.update(aws_env(moto.url, tmpdir))
            os.environ["VCA_HOME"] = str(tmpdir / "home")
            paths_ = {"vca": vca_run, "stock": stock_run}
            warm(moto, tmpdir / "home")
            for nodes in sizes:
                runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths_}
                # Interleaved, so that a busy moment of the machine hits both paths alike.
                for run in range(args.repeat):
                    for path, fn in paths_.items():
                        fresh(moto)
                        runs[path].append(fn(moto, tmpdir / "home", nodes, run))
                        last = runs[path][-1]
                        print(f"{path} {nodes} nodes run {run + 1}: "
                              f"{last['provision']['calls']} calls {last['provision']['seconds']:.1f} s, "
                              f"teardown {last['teardown']['calls']} calls {last['teardown']['seconds']:.1f} s",
                              file=sys.stderr)
                results += [summarize(path, nodes, r) for path, r in runs.items()]
        finally:
            moto.stop()
            os.environ.clear()
            os.environ.update(saved)
    by = {(r["path"], r["nodes"]): r for r in results}
    for nodes in sizes:
        v, s = by[("vca", nodes)], by[("stock", nodes)]
        for r in (v, s):
            r["ratio_calls_vs_stock"] = round(r["provision"]["calls"] / s["provision"]["calls"], 3)
            r["ratio_seconds_vs_stock"] = round(r["provision"]["seconds"] / s["provision"]["seconds"], 3)
        terminate_max = math.ceil(nodes / 1000)
        v["targets_met"] = (v["provision"]["calls_per_node"] <= CALLS_PER_NODE_TARGET
                            and v["teardown"]["terminate_calls"] <= terminate_max)
        ok &= v["targets_met"]
        for r in (v, s):
            rows.append([str(nodes), r["path"], str(r["provision"]["calls"]), f"{r['provision']['calls_per_node']:.2f}",
                         f"{r['provision']['seconds']:.1f}", str(r["teardown"]["calls"]),
                         str(r["teardown"]["terminate_calls"]), f"{r['teardown']['seconds']:.1f}",
                         f"{r['ratio_calls_vs_stock']:.2f}", f"{r['ratio_seconds_vs_stock']:.2f}"])
    md = ("EC2 provision/teardown on moto (medians of "
          f"{args.repeat}); target: vca <= {CALLS_PER_NODE_TARGET:g} calls per node, "
          "<= 1 TerminateInstances per 1000 nodes\n\n"
          + table(["nodes", "path", "provision calls", "calls/node", "provision s", "teardown calls",
                   "TerminateInstances", "teardown s", "calls vs stock", "time vs stock"], rows))
    print(md)
    written = write_results("provision", {"target_calls_per_node": CALLS_PER_NODE_TARGET, "repeat": args.repeat,
                                       "results": results, "targets_met": ok}, md)
    print(f"\nwrote {written}", file=sys.stderr)
    return 0 if ok else 1


def summarize(path: str, nodes: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    def phase(name: str) -> dict[str, Any]:
        calls = median([float(r[name]["calls"]) for r in runs])
        actions: Counter[str] = Counter()
        for r in runs:
            actions.update(r[name]["by_action"])
        return {"calls": int(calls), "calls_per_node": round(calls / nodes, 3),
                "seconds": round(median([r[name]["seconds"] for r in runs]), 2),
                "terminate_calls": int(median([float(r[name]["by_action"].get("TerminateInstances", 0))
                                               for r in runs])),
                "by_action_mean": {k: round(v / len(runs), 1) for k, v in sorted(actions.items())}}

    return {"path": path, "nodes": nodes, "runs": len(runs), "provision": phase("provision"),
            "teardown": phase("teardown")}


if __name__ == "__main__":
    sys.exit(main())
