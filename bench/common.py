"""Shared pieces of the benchmarks: an isolated lab and vca home, timing, tables and JSON.

Benchmarks use their own bridge, subnet, lab folder and VCA_HOME, so they never touch a user's
clusters, and they remove every node they made, also when they fail.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
BENCH_LAB = {"VCA_LAB_BRIDGE": "vcabench0", "VCA_LAB_SUBNET": "10.213.150.0/24"}


@contextmanager
def isolated_lab(name: str) -> Iterator[Path]:
    """Point vca at a private home and lab for the duration; wipe the lab afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"vca-bench-{name}-") as tmp:
        saved = {k: os.environ.get(k) for k in ("VCA_HOME", "VCA_LAB_DIR", *BENCH_LAB)}
        os.environ.update({"VCA_HOME": f"{tmp}/home", "VCA_LAB_DIR": f"{tmp}/lab", **BENCH_LAB})
        try:
            yield Path(tmp)
        finally:
            from vcloud_ansible.lab.manager import Lab

            lab = Lab()
            for n in lab.registry.nodes():
                lab.destroy(n.cluster, n.owner)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, rule, *body])


def write_results(name: str, data: dict[str, Any], markdown: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    data = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "kernel": platform.release()}, **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    return path
