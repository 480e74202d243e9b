"""Benchmark: `Cluster.collect` (what `vca collect` runs) against parallel `scp -r` (one per node, fresh
connections, all at once).

Provisions its own lab cluster (8 nodes by default) under a VCA_HOME of its own, writes 100 MB of
incompressible data spread over many files (from /dev/urandom on the nodes), then times both ways of
bringing it back, alternating, several runs each. Neither side reuses an SSH connection from an earlier
run: scp runs with ControlMaster off, and vca's control masters are closed before each of its runs.
Prints a Markdown table and writes bench/results/collect.{json,md}. Target: vca at most 1.3x scp.

    .venv/bin/python bench/collect.py [--nodes 8] [--mb 100] [--files 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import isolated_lab, write_results

from vcloud_ansible import Cluster, VcaError

REMOTE = "/root/bench-results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--mb", type=int, default=100, help="total MiB across all nodes")
    ap.add_argument("--files", type=int, default=200, help="files per node")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compression", default="auto", help="vca collect --compression (default: auto)")
    args = ap.parse_args(argv)
    with isolated_lab("collect") as home:
        cluster = Cluster("bcol")
        cluster.provision(args.nodes)
        file_size = args.mb * (1 << 20) // args.nodes // args.files
        write_data(cluster, args.files, file_size)
        rows = measure(cluster, home, args.runs, args.nodes * args.files, args.compression)
    report = summarise(rows, args, file_size)
    md = markdown(report)
    print(md)
    print(f"\nwrote {write_results('collect', report, md)}")
    return 0


def write_data(cluster: Cluster, files: int, size: int) -> None:
    cmd = (f"rm -rf {REMOTE} && mkdir -p {REMOTE}/sub && cd {REMOTE} && i=0; while [ $i -lt {files} ]; do "
           f"d=.; [ $((i % 4)) = 0 ] && d=sub; head -c {size} /dev/urandom > $d/f$i.bin; i=$((i+1)); done")
    bad = [r for r in cluster.exec(cmd, timeout=300) if r.rc != 0]
    if bad:
        raise SystemExit(f"writing data failed on {bad[0].node.name}: {bad[0].stderr}")


def close_masters(cluster: Cluster) -> None:
    """Close the SSH control masters of the cluster's nodes, so the next run starts cold."""
    cfg = str(cluster.state.ssh_config_path)
    procs = [subprocess.Popen(["ssh", "-F", cfg, "-O", "exit", n.name], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for n in cluster.nodes()]
    for p in procs:
        p.wait()


def run_vca(cluster: Cluster, dest: Path, compression: str) -> float:
    close_masters(cluster)
    t = time.monotonic()
    try:
        cluster.collect(REMOTE, dest, compression=compression).raise_for_failures()
    except VcaError as exc:
        raise SystemExit(f"vca collect failed: {exc.one_line()}") from None
    return time.monotonic() - t


def run_scp(cluster: Cluster, dest: Path) -> float:
    cfg = str(cluster.state.ssh_config_path)
    dest.mkdir(parents=True)
    nodes = cluster.nodes()
    t = time.monotonic()
    procs = [subprocess.Popen(["scp", "-F", cfg, "-o", "ControlMaster=no", "-o", "ControlPath=none", "-q",
                               "-r", f"{n.name}:{REMOTE}", str(dest / n.name)]) for n in nodes]
    rcs = [p.wait() for p in procs]
    took = time.monotonic() - t
    if any(rcs):
        raise SystemExit(f"scp failed: exit codes {rcs}")
    return took


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.bin") if p.is_file())


def measure(cluster: Cluster, home: Path, runs: int, expected: int, compression: str) -> dict[str, list[float]]:
    """Each run starts from the same state: earlier runs' files written back to disk (sync), and none
    deleted just before (ext4 without a journal, as here, searches past recently deleted inodes when it
    creates files, which charged one method for the other's clean-up). Outputs go at the end."""
    rows: dict[str, list[float]] = {"vca collect": [], "parallel scp -r": []}
    for i in range(runs):
        methods: list[tuple[str, Callable[[Cluster, Path], float]]] = [
            ("vca collect", functools.partial(run_vca, compression=compression)), ("parallel scp -r", run_scp)]
        for name, fn in methods:
            dest = home / f"out-{name.split()[0]}-{i}"
            subprocess.run(["sync"], check=True)
            rows[name].append(fn(cluster, dest))
            got = count_files(dest)
            if got != expected:
                raise SystemExit(f"{name} brought back {got} files, expected {expected}")
    return rows


def summarise(rows: dict[str, list[float]], args: argparse.Namespace, file_size: int) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in rows.items()}
    return {
        "compression": args.compression,
        "nodes": args.nodes, "files_per_node": args.files, "file_bytes": file_size,
        "total_mb": round(args.nodes * args.files * file_size / 1e6, 1), "runs": args.runs,
        "cpus": os.cpu_count(),
        "seconds": {k: [round(x, 3) for x in v] for k, v in rows.items()},
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "ratio_vca_to_scp": round(med["vca collect"] / med["parallel scp -r"], 2),
        "target_ratio": 1.3,
    }


def markdown(r: dict[str, Any]) -> str:
    lines = [f"collect: {r['total_mb']} MB in {r['nodes'] * r['files_per_node']} files on {r['nodes']} nodes, "
             f"{r['runs']} runs each, {r['cpus']} CPUs", "",
             "| method | median s | runs (s) |", "| --- | --- | --- |"]
    for k, v in r["median_seconds"].items():
        lines.append(f"| {k} | {v:.2f} | {', '.join(f'{x:.2f}' for x in r['seconds'][k])} |")
    lines += ["", f"ratio vca / scp: {r['ratio_vca_to_scp']} (target <= {r['target_ratio']})"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
