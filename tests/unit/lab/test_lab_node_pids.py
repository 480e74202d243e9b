"""A stop finds a node's systemd-nspawn by its root folder, also when no PID file names it (its supervisor
was stopped while starting it, before writing nspawn.pid)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vcloud_ansible.lab import node


def test_an_nspawn_without_a_pid_file_is_found_by_its_root(tmp_path: Path) -> None:
    mine, other = tmp_path / "n-0", tmp_path / "n-1"
    # a stand-in named systemd-nspawn with the node's --directory, as the supervisor starts it
    procs = [subprocess.Popen(["systemd-nspawn", "-c", "import time; time.sleep(30)", f"--directory={d / 'root'}"],
                              executable=sys.executable) for d in (mine, other)]
    try:
        found = node._nspawns_of(mine)
        assert found == [procs[0].pid]
        assert node._nspawns_of(tmp_path / "n-2") == []
    finally:
        for p in procs:
            p.kill()
            p.wait()
