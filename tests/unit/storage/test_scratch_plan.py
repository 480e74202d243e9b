"""The scratch role's node-side planner (roles/scratch/files/vca-scratch), off the node: which disks,
which RAID tool, what it refuses, and the exact commands of each path (the mdadm one cannot run on
this kernel, which has no md)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles/scratch/files/vca-scratch"


def _load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("vca_scratch", str(SCRIPT))
    spec = importlib.util.spec_from_loader("vca_scratch", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


vs = _load()
CFG: dict[str, Any] = {"path": "/scratch", "disks": [], "patterns": ["/dev/xvd[b-e]"], "raid_tool": "mdadm",
                       "mount_options": []}
EMPTY: dict[str, str] = {}
OURS_EXT4 = {"TYPE": "ext4", "LABEL": "vca-scratch"}


def _plan(disks: list[str], probe: dict[str, dict[str, str]] | None = None, mounted: str = "",
          have_md: bool = True, force: bool = False, **cfg: Any) -> tuple[str, list[str], list[list[str]]]:
    probe = probe if probe is not None else {d: EMPTY for d in disks}
    result: tuple[str, list[str], list[list[str]]] = vs.plan({**CFG, **cfg}, disks, probe, mounted, have_md, force)
    return result


def test_mdadm_raid0_commands() -> None:
    kind, packages, cmds = _plan(["/dev/nvme1n1", "/dev/nvme2n1"])
    assert (kind, packages) == ("mdadm", ["mdadm"])
    assert cmds == [
        ["mkdir", "-p", "/scratch"],
        ["mdadm", "--stop", "/dev/md/vca-scratch"],
        ["wipefs", "-a", "/dev/nvme1n1"], ["wipefs", "-a", "/dev/nvme2n1"],
        ["mdadm", "--create", "/dev/md/vca-scratch", "--run", "--name=vca-scratch", "--level=0", "--chunk=64",
         "--raid-devices=2", "/dev/nvme1n1", "/dev/nvme2n1"],
        ["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "vca-scratch", "-E", "stride=16,stripe-width=32",
         "/dev/md/vca-scratch"],
        ["mdadm", "--assemble", "/dev/md/vca-scratch", "/dev/nvme1n1", "/dev/nvme2n1"],
        ["mount", "-o", "noatime", "/dev/md/vca-scratch", "/scratch"],
    ]


def test_mdadm_array_of_ours_is_assembled_not_made() -> None:
    member = {"TYPE": "linux_raid_member", "LABEL": "node-3:vca-scratch"}
    _, _, cmds = _plan(["/dev/a", "/dev/b"], {"/dev/a": member, "/dev/b": member})
    assert cmds == [["mkdir", "-p", "/scratch"], ["mdadm", "--assemble", "/dev/md/vca-scratch", "/dev/a", "/dev/b"],
                    ["mount", "-o", "noatime", "/dev/md/vca-scratch", "/scratch"]]


def test_no_md_falls_back_to_btrfs_and_btrfs_on_request() -> None:
    for kwargs in ({"have_md": False}, {"raid_tool": "btrfs"}):
        kind, packages, cmds = _plan(["/dev/a", "/dev/b", "/dev/c"], **kwargs)
        assert (kind, packages) == ("btrfs", ["btrfs-progs"])
        assert cmds[1:] == [
            ["mkfs.btrfs", "-q", "-f", "-L", "vca-scratch", "-d", "raid0", "-m", "raid1", "/dev/a", "/dev/b", "/dev/c"],
            ["mount", "-t", "btrfs", "-o", "noatime,device=/dev/a,device=/dev/b,device=/dev/c", "/dev/a", "/scratch"],
        ]


def test_one_disk_ext4_and_remount_of_ours() -> None:
    kind, _, cmds = _plan(["/dev/a"], mount_options=["nodiratime", "noatime"])
    assert kind == "ext4"
    assert cmds[1:] == [["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "vca-scratch", "/dev/a"],
                        ["mount", "-o", "noatime,nodiratime", "/dev/a", "/scratch"]]
    _, _, cmds = _plan(["/dev/a"], {"/dev/a": OURS_EXT4})
    assert cmds == [["mkdir", "-p", "/scratch"], ["mount", "-o", "noatime", "/dev/a", "/scratch"]]
    assert _plan(["/dev/a"], {"/dev/a": OURS_EXT4}, mounted="/dev/a")[2] == []


def test_no_disk_is_a_folder(tmp_path: Path) -> None:
    assert _plan([], path=str(tmp_path / "s")) == ("folder", [], [["mkdir", "-p", str(tmp_path / "s")]])
    assert _plan([], path=str(tmp_path)) == ("folder", [], [])


def test_foreign_filesystem_refused_unless_forced() -> None:
    probe = {"/dev/a": {"TYPE": "xfs", "LABEL": "data"}, "/dev/b": EMPTY}
    with pytest.raises(vs.Refused, match=r"/dev/a holds xfs labelled 'data': not formatted.*scratch_force: true"):
        _plan(["/dev/a", "/dev/b"], probe, have_md=False)
    _, _, cmds = _plan(["/dev/a", "/dev/b"], probe, have_md=False, force=True)
    assert cmds[1][0] == "mkfs.btrfs"
    # someone else's md array is foreign too
    with pytest.raises(vs.Refused):
        _plan(["/dev/a"], {"/dev/a": {"TYPE": "linux_raid_member", "LABEL": "other:md0"}})


def test_half_empty_set_of_ours_is_made_again() -> None:
    """Instance-store disks come back empty after a stop/start: made again, not failed."""
    _, _, cmds = _plan(["/dev/a", "/dev/b"], {"/dev/a": {"TYPE": "btrfs", "LABEL": "vca-scratch"}, "/dev/b": EMPTY},
                       have_md=False)
    assert cmds[1][0] == "mkfs.btrfs"


def test_find_disks() -> None:
    nvme = ["/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1",
            "/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1-ns-1",
            "/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS2",
            "/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS2-part1"]
    real = {nvme[0]: "/dev/nvme1n1", nvme[1]: "/dev/nvme1n1", nvme[2]: "/dev/nvme2n1", nvme[3]: "/dev/nvme2n1p1"}

    def glob_(pattern: str) -> list[str]:
        return nvme if "nvme" in pattern else []

    assert vs.find_disks(CFG, glob_, lambda p: real.get(p, p)) == ["/dev/nvme1n1", "/dev/nvme2n1"]
    assert vs.find_disks(CFG, lambda p: ["/dev/xvdc", "/dev/xvdb"] if "xvd" in p else [], lambda p: p) == \
        ["/dev/xvdb", "/dev/xvdc"]
    with pytest.raises(vs.Refused, match="scratch disk not found: /dev/nope"):
        vs.find_disks({**CFG, "disks": ["/dev/nope"]}, glob_, lambda p: p, lambda p: False)
