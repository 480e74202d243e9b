"""Membership push: the time to give every node of an N-node lab cluster the node list (cluster.json,
hosts block, hostfile, node-to-node SSH files, the vca-on-change check), against one `ssh true` on
every node at once over the same connections. At 4, 8, 16 (and 32) nodes; medians and the ratio.

Both sides run warm (the SSH master connections a vca command has open, as after provision's wait for
SSH). The first push at each size changes the node list on every node (the cluster grew); the repeats
find it unchanged and rewrite nothing. The push must grow no worse than linearly: no per-pair work from
the control machine.

    python bench/membership.py [--repeat 5] [--nodes 4,8,16,32]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import isolated_lab, median, table, timed, write_results

from vcloud_ansible import Cluster
from vcloud_ansible.membership.push import push
from vcloud_ansible.node import Node
from vcloud_ansible.remote.ssh import run_all

CLUSTER = "members"
# A bridge and subnet of this benchmark's own: other benchmarks may run at the same time.
OWN_LAB = {"VCA_LAB_BRIDGE": "vcabench13", "VCA_LAB_SUBNET": "10.213.163.0/24"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--nodes", default="4,8,16,32")
    args = ap.parse_args()
    counts = sorted(int(x) for x in args.nodes.split(","))
    results: list[dict[str, object]] = []
    with isolated_lab("membership"):
        os.environ.update(OWN_LAB)
        c = Cluster(CLUSTER)
        c.provision(counts[0])
        for n in counts:
            have = len(c.nodes())
            if have < n:
                c.provision(n - have)  # pushes the grown list itself; the timed pushes follow
            nodes = c.nodes()[:n]
            run_all(c.state, nodes, "true")  # masters open on every node
            # a node list the nodes do not have yet: every node rewrites its files
            c.exec("rm -f /etc/vca/cluster.json", [x.index for x in nodes])
            first = timed(lambda nodes=nodes: _push(c, nodes))  # type: ignore[misc]
            pushes = [timed(lambda nodes=nodes: _push(c, nodes)) for _ in range(args.repeat)]  # type: ignore[misc]
            trues = [timed(lambda nodes=nodes: _true(c, nodes)) for _ in range(args.repeat)]  # type: ignore[misc]
            row = {"nodes": n, "changed_s": first, "push_s": pushes, "ssh_true_s": trues,
                   "ratio": median(pushes) / median(trues)}
            results.append(row)
            print(f"{n} nodes: push (list changed) {first:.2f} s, push {median(pushes):.2f} s, "
                  f"ssh true {median(trues):.2f} s, ratio {row['ratio']:.1f}", flush=True)
    rows = [[str(r["nodes"]), f"{r['changed_s']:.2f}", f"{median(r['push_s']):.2f}",  # type: ignore[arg-type]
             f"{median(r['ssh_true_s']):.2f}", f"{r['ratio']:.1f}"] for r in results]  # type: ignore[arg-type]
    per_node = [median(r["push_s"]) / int(str(r["nodes"])) for r in results]  # type: ignore[arg-type]
    md = "\n".join([
        "## Membership push vs one `ssh true` fan-out (lab nodes, warm connections)",
        "", table(["nodes", "push, list changed s", "push median s", "ssh true median s", "ratio"], rows), "",
        f"Push seconds per node: {', '.join(f'{x:.3f}' for x in per_node)} (flat or falling: linear at worst).",
    ])
    print(md)
    print(f"\nwrote {write_results('membership', {'repeat': args.repeat, 'results': results}, md)}")


def _push(c: Cluster, nodes: list[Node]) -> None:
    failed = push(c.state, nodes, hook="changed").failed
    if failed:
        raise SystemExit(f"push failed: {failed}")


def _true(c: Cluster, nodes: list[Node]) -> None:
    bad = [r.node.name for r in run_all(c.state, nodes, "true") if r.rc != 0]
    if bad:
        raise SystemExit(f"ssh true failed on {bad}")


if __name__ == "__main__":
    main()
