"""Benchmark: `vca compile` of examples/compile on a kept dev node: first build, no-change rebuild,
one-file rebuild, against the old way (send the whole source tree with tar over ssh into a fresh
folder and build from scratch without ccache, every time).

Provisions its own lab cluster (one dev node with the toolchain role, timed too) under a VCA_HOME of
its own. Every vca run is a Cluster.compile call with --keep semantics; the one-file rebuild edits
greet.cpp with a new text each run, so ccache cannot serve it. Prints a Markdown table and writes
bench/results/compile.{json,md}.

    .venv/bin/python bench/compile.py [--runs 3]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import isolated_lab, median, table, write_results

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "compile"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    with isolated_lab("compile") as home:
        from vcloud_ansible.cluster import Cluster

        cluster = Cluster("bcmp")
        t = time.perf_counter()
        cluster.provision(1, role="dev", setup={"dev": ["toolchain"]})
        setup_s = time.perf_counter() - t
        rows = measure(cluster, home, args.runs)
    report = {"runs": args.runs, "toolchain_setup_s": round(setup_s, 1), "cases": rows}
    md = markdown(report)
    print(md)
    print(f"\nwrote {write_results('compile', report, md)}")
    return 0


def measure(cluster: Any, home: Path, runs: int) -> dict[str, dict[str, Any]]:
    from vcloud_ansible.compile.plan import CompileRequest

    cases: dict[str, dict[str, Any]] = {}

    def record(case: str, seconds: float, sent: int, compiles: int) -> None:
        c = cases.setdefault(case, {"seconds": [], "files_sent": [], "compiler_invocations": []})
        c["seconds"].append(round(seconds, 3))
        c["files_sent"].append(sent)
        c["compiler_invocations"].append(compiles)

    def vca(src: Path, out: Path) -> tuple[float, int, int]:
        t = time.perf_counter()
        r = cluster.compile(CompileRequest(src, artifacts=["hello"], out=out, keep=True))
        return time.perf_counter() - t, len(r.files_sent), r.compiler_invocations

    for run in range(runs):
        src = home / f"src{run}"  # a new path: a new build folder on the node (the ccache is shared)
        shutil.copytree(EXAMPLE, src)
        out = home / f"out{run}"
        # Run 0 starts with an empty ccache; later runs build a new folder whose objects ccache holds.
        record("vca: first build, cold ccache" if run == 0 else "vca: first build of a new folder, warm ccache",
               *vca(src, out))
        record("vca: no-change rebuild", *vca(src, out))
        greet = src / "greet.cpp"
        greet.write_text(greet.read_text().replace("built by", f"built (run {run}, {time.time_ns()}) by"))
        record("vca: one-file rebuild", *vca(src, out))
        record("old way: full send + clean build", *old_way(cluster, src, home / f"old{run}"), 2)
    return {name: {**c, "median_s": round(median(c["seconds"]), 3)} for name, c in cases.items()}


def old_way(cluster: Any, src: Path, out: Path) -> tuple[float, int]:
    """tar the whole tree over ssh into a fresh folder, build without ccache, scp the binary back."""
    from vcloud_ansible.remote.ssh import ssh_command

    node = next(n for n in cluster.nodes() if n.role == "dev")
    ssh = ssh_command(cluster.state, node)
    files = sum(1 for p in src.rglob("*") if p.is_file())
    folder = f"old-{time.time_ns()}"
    t = time.perf_counter()
    tar = subprocess.Popen(["tar", "-C", str(src), "-cf", "-", "."], stdout=subprocess.PIPE)
    subprocess.run([*ssh, f"mkdir -p {folder} && tar -C {folder} -xf - && cd {folder} && "
                    "CCACHE_DISABLE=1 scons -Q -j$(nproc) >/dev/null"], stdin=tar.stdout, check=True)
    tar.wait()
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["scp", "-q", "-F", str(cluster.state.ssh_config_path), f"{node.name}:{folder}/hello",
                    str(out / "hello")], check=True)
    seconds = time.perf_counter() - t
    subprocess.run([*ssh, f"rm -rf {shlex.quote(folder)}"], check=True)
    return seconds, files


def markdown(report: dict[str, Any]) -> str:
    rows = [[name, f"{c['median_s']:.2f}", ", ".join(f"{s:.2f}" for s in c["seconds"]),
             str(c["files_sent"][0]), str(c["compiler_invocations"][0])]
            for name, c in report["cases"].items()]
    head = (f"compile: examples/compile (2 translation units, boost program_options) on one lab dev node, "
            f"{report['runs']} runs each; making the dev node with the toolchain role took "
            f"{report['toolchain_setup_s']:.0f} s")
    return head + "\n\n" + table(["case", "median s", "runs (s)", "files sent", "compiler invocations"], rows)


if __name__ == "__main__":
    sys.exit(main())
