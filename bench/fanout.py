"""Fan-out: inject + launch of the same tarball (1 MB and 50 MB, incompressible) to 1, 4, 8 and 16
lab nodes: `Cluster.inject` (what `vca inject` runs) against the old way, parallel scp + ssh with fresh
connections per node (what the bash scripts did, run in parallel). Same lab, same run; medians and the ratio.
Target: vca at most 1.5x the baseline at 16 nodes, for both sizes.

Both sides start cold: no SSH master connection is open, and nodes hold no copy of the release.

    python bench/fanout.py [--repeat 3] [--nodes 1,4,8,16] [--sizes 1,50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import isolated_lab, median, table, timed, write_results

from vcloud_ansible import Cluster

TARGET_RATIO = 1.5
LAUNCH = "#!/bin/sh\necho started > started.txt\n"
CLUSTER = "fanout"


def make_tarball(folder: Path, mb: int) -> Path:
    pkg = folder / f"pkg{mb}"
    pkg.mkdir()
    (pkg / "vcloud-launch").write_text(LAUNCH)
    (pkg / "vcloud-launch").chmod(0o755)
    (pkg / "data.bin").write_bytes(os.urandom(mb << 20))
    out = folder / f"pkg{mb}.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=1) as tf:
        tf.add(pkg / "vcloud-launch", "vcloud-launch")
        tf.add(pkg / "data.bin", "data.bin")
    return out


def close_masters(c: Cluster, names: list[str]) -> None:
    cfg = str(c.state.ssh_config_path)
    for n in names:
        subprocess.run(["ssh", "-F", cfg, "-O", "exit", n], capture_output=True, check=False)


def reset_nodes(c: Cluster, indexes: list[int]) -> None:
    c.exec("rm -rf ~/vca ~/old && mkdir ~/old", indexes)


def baseline(c: Cluster, names: list[str], tarball: Path) -> None:
    """Per node, at once: scp the tarball, then ssh to unpack and start it detached (fresh connections)."""
    fresh = ["-F", str(c.state.ssh_config_path), "-o", "ControlMaster=no", "-o", "ControlPath=none"]
    remote = (f"cd ~/old && tar xzf {tarball.name} && "
              "setsid ./vcloud-launch > launch.log 2>&1 < /dev/null & exit 0")

    def one(name: str) -> None:
        subprocess.run(["scp", "-q", *fresh, str(tarball), f"{name}:old/"], check=True)
        subprocess.run(["ssh", *fresh, name, remote], check=True, capture_output=True)

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(one, names))


def inject(c: Cluster, tarball: Path, indexes: list[int]) -> None:
    c.inject(tarball, nodes=indexes).raise_for_failures()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nodes", default="1,4,8,16")
    ap.add_argument("--sizes", default="1,50", help="tarball sizes in MB")
    args = ap.parse_args()
    counts = [int(x) for x in args.nodes.split(",")]
    sizes = [int(x) for x in args.sizes.split(",")]
    results: list[dict[str, object]] = []
    with isolated_lab("fanout") as tmp:
        c = Cluster(CLUSTER)
        c.provision(max(counts))
        tarballs = {mb: make_tarball(tmp, mb) for mb in sizes}
        for mb in sizes:
            for n in counts:
                idx = list(range(n))
                names = [f"{CLUSTER}-{i}" for i in idx]
                base_t: list[float] = []
                vca_t: list[float] = []
                for _ in range(args.repeat):
                    reset_nodes(c, idx)
                    close_masters(c, names)
                    tb = tarballs[mb]
                    base_t.append(timed(lambda names=names, tb=tb: baseline(c, names, tb)))  # type: ignore[misc]
                    reset_nodes(c, idx)
                    close_masters(c, names)
                    vca_t.append(timed(lambda tb=tb, idx=idx: inject(c, tb, idx)))  # type: ignore[misc]
                row = {"size_mb": mb, "nodes": n, "baseline_s": base_t, "vca_s": vca_t,
                       "ratio": median(vca_t) / median(base_t)}
                results.append(row)
                print(f"{mb} MB x {n} nodes: baseline {median(base_t):.2f} s, vca {median(vca_t):.2f} s, "
                      f"ratio {row['ratio']:.2f}", flush=True)
    rows = [[str(r["size_mb"]), str(r["nodes"]), f"{median(r['baseline_s']):.2f}",  # type: ignore[arg-type]
             f"{median(r['vca_s']):.2f}", f"{r['ratio']:.2f}"] for r in results]  # type: ignore[arg-type]
    at_max = [r for r in results if r["nodes"] == max(counts)]
    verdict = all(float(r["ratio"]) <= TARGET_RATIO for r in at_max)  # type: ignore[arg-type]
    md = "\n".join([
        "## Fan-out: inject + launch, vca vs parallel scp+ssh (fresh connections), cold",
        "", table(["MB", "nodes", "baseline median s", "vca median s", "ratio"], rows), "",
        f"Target: ratio <= {TARGET_RATIO} at {max(counts)} nodes: {'met' if verdict else 'MISSED'}",
    ])
    print(md)
    print(f"\nwrote {write_results('fanout', {'repeat': args.repeat, 'results': results}, md)}")


if __name__ == "__main__":
    main()
