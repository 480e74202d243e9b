"""Keeps one lab node's systemd-nspawn running, detached from vca: a guest reboot makes nspawn exit
with 133, and the node is started again. SIGTERM asks the guest to power off and ends the loop.

Usage: python -m vcloud_ansible.lab.supervisor NODE_DIR -- systemd-nspawn ARGS...
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

REBOOT_EXIT = 133
MAX_REBOOTS_PER_MINUTE = 10
POWERED_OFF = "powered-off"  # written when the guest powered itself off


def main(argv: list[str]) -> int:
    node_dir = Path(argv[0])
    cmd = argv[argv.index("--") + 1 :]
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()  # nspawn turns SIGTERM into a clean poweroff of the guest

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    boots: list[float] = []
    rc = 0
    with open(node_dir / "console.log", "ab", buffering=0) as console:
        while not stopping:
            boots = [t for t in boots if t > time.time() - 60] + [time.time()]
            if len(boots) > MAX_REBOOTS_PER_MINUTE:
                console.write(b"vca-supervisor: too many reboots in a minute, giving up\n")
                return 1
            binds = node_dir / "binds"  # devices given to the node while it ran (lab/node.add_disk)
            extra = [f"--bind={d}" for d in binds.read_text().split()] if binds.exists() else []
            child = subprocess.Popen(cmd + extra, stdin=subprocess.DEVNULL, stdout=console, stderr=console)
            (node_dir / "nspawn.pid").write_text(str(child.pid))
            if stopping:  # the stop came while nspawn was being started (child was not set yet): end it now
                child.terminate()
            (node_dir / "booted-at").write_text(f"{time.time():.3f}")
            rc = child.wait()
            console.write(f"vca-supervisor: nspawn exited {rc}\n".encode())
            if rc != REBOOT_EXIT:
                if rc == 0 and not stopping:  # the guest powered itself off (vca-guard): the lab marks it stopped
                    (node_dir / POWERED_OFF).write_text(f"{time.time():.3f}")
                break
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
