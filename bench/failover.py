"""HA failover: kill the lab node that runs a service (SIGKILL of the whole machine, as a power cut)
and measure the time until the service answers on another node; median and max over --kills kills
(the killed node is powered on again on its disk between kills, and rejoins). Also the idle CPU that
corosync and pacemaker take per node, on clusters of 3 and of 8 nodes (full members and remote nodes
apart). Target: median failover at most 10 s.

    python bench/failover.py [--kills 5] [--window 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import isolated_lab, median, table, write_results

from vcloud_ansible import Cluster
from vcloud_ansible.lab import netns
from vcloud_ansible.lab import node as labnode
from vcloud_ansible.lab.manager import Lab

CLUSTER = "failover"
OWN_LAB = {"VCA_LAB_BRIDGE": "vcabench17", "VCA_LAB_SUBNET": "10.213.167.0/24"}
TARGET_MEDIAN = 10.0
PORT = 8080
HA_PROCS = {"corosync", "pacemakerd", "pacemaker-based", "pacemaker-fenced", "pacemaker-execd",
            "pacemaker-attrd", "pacemaker-schedulerd", "pacemaker-controld", "pacemaker-remoted"}
TICK = os.sysconf("SC_CLK_TCK")


def answers(ip: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:{PORT}/", timeout=0.5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def ha_ticks(cluster: str) -> dict[str, int]:
    """CPU ticks (user + system) used so far by the corosync and pacemaker processes of each node."""
    out: dict[str, int] = {}
    for n in Lab().nodes(cluster):
        total = 0
        for pid in netns.pids(n.netns):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            if comm in HA_PROCS or comm.startswith("pacemaker"):
                fields = stat[stat.rindex(")") + 2:].split()
                total += int(fields[11]) + int(fields[12])
        out[n.name] = total
    return out


def idle_cpu(c: Cluster, window: float) -> dict[str, float]:
    """Percent of one CPU each node's corosync + pacemaker took over ``window`` seconds of an idle cluster."""
    before = ha_ticks(c.name)
    time.sleep(window)
    after = ha_ticks(c.name)
    return {k: 100.0 * (after[k] - before[k]) / TICK / window for k in before}


def kill_once(c: Cluster) -> tuple[str, str, float]:
    ips = {n.name: n.private_ip for n in c.nodes()}
    web = next(s for s in c.services() if s.name == "web")
    assert web.node and answers(ips[web.node]), f"web does not answer on {web.node}"
    victim = next(n for n in Lab().nodes(c.name) if n.name == web.node)
    started = time.monotonic()
    labnode.kill(victim)
    while time.monotonic() - started < 120:
        for name, ip in ips.items():
            if name != victim.name and answers(ip):
                took = time.monotonic() - started
                c.power(False, [victim.index])
                c.power(True, [victim.index])  # back on its disk; the HA membership is checked again
                return victim.name, name, took
        time.sleep(0.1)
    raise SystemExit(f"web did not answer on another node within 120 s after {victim.name} was killed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--window", type=float, default=30.0)
    args = ap.parse_args()
    with isolated_lab("failover"):
        os.environ.update(OWN_LAB)
        c = Cluster(CLUSTER)
        t0 = time.monotonic()
        c.provision(3)
        c.setup(add="ha_cluster")
        form3 = time.monotonic() - t0
        print(f"3 nodes provisioned and formed in {form3:.1f} s", flush=True)
        cpu3 = idle_cpu(c, args.window)
        print(f"idle CPU % per node at 3: {cpu3}", flush=True)
        c.add_service("web", ["python3", "-m", "http.server", str(PORT)])
        kills: list[tuple[str, str, float]] = []
        for i in range(args.kills):
            victim, to, took = kill_once(c)
            kills.append((victim, to, took))
            print(f"kill {i + 1}: {victim} -> web answers on {to} after {took:.2f} s", flush=True)
        c.remove_service("web")
        t1 = time.monotonic()
        c.provision(5)  # 8 nodes: 5 full members (the default), 3 pacemaker_remote nodes
        grow = time.monotonic() - t1
        cpu8 = idle_cpu(c, args.window)
        print(f"idle CPU % per node at 8: {cpu8}", flush=True)
        c.teardown()
    times = [k[2] for k in kills]
    med, worst = median(times), max(times)
    rows = [[str(i + 1), killed, to, f"{took:.2f}"] for i, (killed, to, took) in enumerate(kills)]
    members8 = {f"{CLUSTER}-{i}" for i in range(5)}
    cpu_rows = [["3", "member", f"{median(list(cpu3.values())):.2f}", f"{max(cpu3.values()):.2f}"],
                ["8", "member", f"{median([v for k, v in cpu8.items() if k in members8]):.2f}",
                 f"{max(v for k, v in cpu8.items() if k in members8):.2f}"],
                ["8", "remote", f"{median([v for k, v in cpu8.items() if k not in members8]):.2f}",
                 f"{max(v for k, v in cpu8.items() if k not in members8):.2f}"]]
    md = "\n".join([
        "## HA failover after a node is killed (lab nodes, token 1000 ms + 650 ms per member beyond 2)", "",
        table(["kill", "killed node", "moved to", "seconds"], rows), "",
        f"Median {med:.2f} s, max {worst:.2f} s (target median <= {TARGET_MEDIAN:.0f} s: "
        f"{'met' if med <= TARGET_MEDIAN else 'MISSED'}). Cluster of 3 set up (install, configure, form) in "
        f"{form3:.0f} s; 5 nodes added (installed, joined) in {grow:.0f} s.", "",
        f"### Idle CPU of corosync + pacemaker, % of one CPU per node over {args.window:.0f} s", "",
        table(["nodes", "kind", "median %", "max %"], cpu_rows),
    ])
    print(md)
    data = {"kills": [{"killed": k, "moved_to": t, "seconds": s} for k, t, s in kills],
            "median_s": med, "max_s": worst, "target_median_s": TARGET_MEDIAN,
            "setup_3_s": form3, "grow_to_8_s": grow, "idle_cpu_pct": {"3": cpu3, "8": cpu8},
            "window_s": args.window}
    print(f"\nwrote {write_results('failover', data, md)}")


if __name__ == "__main__":
    main()
