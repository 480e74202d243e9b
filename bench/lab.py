"""Lab speed: time to provision 1, 4 and 8 nodes to SSH-ready (image cached), teardown time, and the
idle memory of a node. Targets: 8 nodes SSH-ready in at most 15 s, teardown in at most 5 s.

The clusters name no setup roles, so provision includes the setup stage's cost when there is nothing
to apply (no playbook run: the table says how many setup runs there were, which must be 0).

    python bench/lab.py [--repeat 3] [--sizes 1,4,8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import isolated_lab, median, table, timed, write_results

from vcloud_ansible import Cluster
from vcloud_ansible.lab import netns
from vcloud_ansible.lab.image import ImageRecipe, ensure_image
from vcloud_ansible.lab.manager import Lab

SIZES = (1, 4, 8)
TARGET_PROVISION_8 = 15.0
TARGET_TEARDOWN = 5.0


def node_memory_kib(cluster: str) -> list[int]:
    """Proportional set size (PSS) of everything that makes up each node: its processes, nspawn and
    the supervisor. PSS counts shared pages once across nodes, so the sum is what the nodes cost."""
    out = []
    for n in Lab().nodes(cluster):
        pids = set(netns.pids(n.netns))
        for name in ("supervisor.pid", "nspawn.pid"):
            p = Path(n.dir) / name
            if p.exists():
                pids.add(int(p.read_text()))
        out.append(sum(_pss(pid) for pid in pids))
    return out


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="cluster sizes, comma separated")
    args = ap.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    setup_runs = 0
    with isolated_lab("lab"):
        ensure_image(Lab().config.image_dir, ImageRecipe.for_host(), print)  # cached: not timed
        results: dict[int, dict[str, list[float]]] = {}
        memory: list[int] = []
        for size in sizes:
            r: dict[str, list[float]] = {"provision_s": [], "teardown_s": []}
            for i in range(args.repeat):
                c = Cluster(f"bench{size}x{i}")
                r["provision_s"].append(timed(lambda c=c, size=size: c.provision(size)))  # type: ignore[misc]
                setup_runs += sum(1 for p in (c.state.dir / "runs").glob("*-setup-*"))
                if size == max(sizes) and i == 0:
                    time.sleep(5)  # let boot-time work settle before reading idle memory
                    memory = node_memory_kib(c.name)
                r["teardown_s"].append(timed(c.teardown))
            results[size] = r
    rows = [[str(s), f"{median(r['provision_s']):.2f}", f"{min(r['provision_s']):.2f}",
             f"{median(r['teardown_s']):.2f}"] for s, r in results.items()]
    per_node = median([float(m) for m in memory]) / 1024 if memory else float("nan")
    md = "\n".join([
        "## Lab: provision to SSH-ready and teardown (image cached)",
        "",
        table(["nodes", "provision median s", "provision min s", "teardown median s"], rows),
        "",
        f"Idle memory per node (PSS of its processes, nspawn and supervisor): {per_node:.1f} MiB",
        f"Setup stage runs during these provisions (no setup roles named): {setup_runs}",
        f"Targets: 8 nodes SSH-ready <= {TARGET_PROVISION_8:.0f} s "
        f"({_verdict(median(results[8]['provision_s']) <= TARGET_PROVISION_8) if 8 in results else 'not measured'}), "
        f"teardown <= {TARGET_TEARDOWN:.0f} s "
        f"({'met' if max(median(r['teardown_s']) for r in results.values()) <= TARGET_TEARDOWN else 'MISSED'})",
    ])
    print(md)
    path = write_results("lab", {"repeat": args.repeat, "runs": {str(k): v for k, v in results.items()},
                                 "setup_runs": setup_runs,
                                 "idle_pss_kib_per_node": memory,
                                 "targets": {"provision_8_s": TARGET_PROVISION_8, "teardown_s": TARGET_TEARDOWN}}, md)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
