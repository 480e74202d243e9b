"""One lab node: an overlay root on the frozen image, personalised before boot (hostname, machine-id,
its own SSH host key, the cluster's authorized key, resolver, apt proxy and apt retries), booted by
systemd-nspawn under the detached supervisor, and removed without leaving a process, mount or loop
device behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from ..errors import LabError
from . import aptproxy, netns
from .procs import alive, read_pid, send, wait_gone
from .registry import LabNode
from .supervisor import POWERED_OFF

# Host devices a node may use (FUSE for s3fs, loop and btrfs control for scratch volumes).
DEVICE_BINDS = ("/dev/fuse", "/dev/loop-control", "/dev/btrfs-control")


def personalise(root: Path, node: LabNode, authorized_key: str, gateway: str, apt_proxy: str) -> str:
    """Write the node's identity into its overlay root. Returns its SSH host public key line."""
    etc = root / "etc"
    (etc / "hostname").write_text(node.name + "\n")
    (etc / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{node.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")
    resolv = etc / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text(f"nameserver {gateway}\n")
    (etc / "apt/apt.conf.d/01vca-proxy").write_text(aptproxy.node_apt_conf(apt_proxy))
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    auth = ssh_dir / "authorized_keys"
    auth.write_text(authorized_key.strip() + "\n")
    auth.chmod(0o600)
    key = etc / "ssh/ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.name}", "-f", str(key)],
        check=True, capture_output=True,
    )
    pub = key.with_suffix(".pub").read_text().split()
    return f"{pub[0]} {pub[1]}"


def nspawn_command(node: LabNode, root: Path) -> list[str]:
    cmd = [
        "systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
        f"--network-namespace-path=/run/netns/{node.netns}",
        f"--directory={root}", f"--machine={node.name}", f"--hostname={node.name}",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no",
        "--console=read-only",  # boot messages land in console.log, for when a node does not come up
        "--kill-signal=SIGRTMIN+4",  # poweroff, not halt: the guest exits instead of hanging
    ]
    cmd += [f"--bind={d}" for d in DEVICE_BINDS if os.path.exists(d)]
    return cmd


def create(node: LabNode, image_rootfs: Path, bridge: str, prefixlen: int, gateway: str,
           authorized_key: str, apt_proxy: str) -> str:
    """Build and boot the node; returns its SSH host public key. On failure nothing is left behind."""
    d = Path(node.dir)
    try:
        for sub in ("upper", "work", "root"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        _mount_overlay(d, image_rootfs)
        hostkey = personalise(d / "root", node, authorized_key, gateway, apt_proxy)
        (d / "node.json").write_text(json.dumps({"name": node.name, "ip": node.ip, "hostkey": hostkey}))
        _boot(node, bridge, prefixlen, gateway)
        return hostkey
    except BaseException:
        stop([node], grace=0)
        cleanup(node)
        raise


def _mount_overlay(d: Path, image_rootfs: Path) -> None:
    _run(["mount", "-t", "overlay", "overlay", "-o",
          f"lowerdir={image_rootfs},upperdir={d / 'upper'},workdir={d / 'work'}", str(d / "root")])


def _boot(node: LabNode, bridge: str, prefixlen: int, gateway: str) -> None:
    """Its namespace on the bridge, and systemd-nspawn under the detached supervisor."""
    d = Path(node.dir)
    netns.create(node.netns, node.veth, bridge, node.ip, prefixlen, gateway)
    sup = subprocess.Popen(
        [sys.executable, "-m", "vcloud_ansible.lab.supervisor", str(d), "--", *nspawn_command(node, d / "root")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    (d / "supervisor.pid").write_text(str(sup.pid))


def power_off(node: LabNode) -> None:
    """After ``stop``: release what a running node holds on the host (loop devices, the overlay mount,
    its namespace and veth) but keep its folder: the overlay's upper dir is its disk."""
    d = Path(node.dir)
    _detach_loops(d)
    root = d / "root"
    if os.path.ismount(root) and subprocess.run(["umount", str(root)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)
    netns.delete(node.netns, node.veth)
    # dead PIDs, never to be signalled again
    for pid_file in ("supervisor.pid", "nspawn.pid", "booted-at", POWERED_OFF):
        (d / pid_file).unlink(missing_ok=True)


def power_on(node: LabNode, image_rootfs: Path, bridge: str, prefixlen: int, gateway: str) -> str:
    """Boot a powered-off node again on its overlay (same disk, address, host key). Returns its host
    key. On failure it is powered off again, its disk kept."""
    d = Path(node.dir)
    if not (d / "upper").is_dir():
        raise LabError(f"lab node {node.name} has no disk left ({d / 'upper'})",
                       f"remove it with `vca remove {node.index}`")
    try:
        if not os.path.ismount(d / "root"):
            _mount_overlay(d, image_rootfs)
        _boot(node, bridge, prefixlen, gateway)
    except BaseException:
        stop([node], grace=0)
        power_off(node)
        raise
    return str(json.loads((d / "node.json").read_text()).get("hostkey", ""))


def powered_itself_off(node: LabNode) -> bool:
    """The guest powered itself off (its supervisor said so) and nothing of it runs any more. Only root
    can release what it held on the host."""
    d = Path(node.dir)
    return os.geteuid() == 0 and (d / POWERED_OFF).exists() and not _node_pids(node)


def supervisor_pid(node: LabNode) -> int | None:
    return read_pid(Path(node.dir) / "supervisor.pid")


def is_running(node: LabNode) -> bool:
    """The supervisor and its systemd-nspawn are alive (no subprocess: status lists many nodes)."""
    d = Path(node.dir)
    return all(pid is not None and alive(pid) for pid in (read_pid(d / "supervisor.pid"), read_pid(d / "nspawn.pid")))


def guest_running(node: LabNode) -> bool:
    """The guest's processes run in the node's namespace, whatever became of its supervisor and
    systemd-nspawn (killed by hand or by the OOM killer, the guest lives on and serves SSH)."""
    return bool(netns.pids(node.netns))


def _guest_init(node: LabNode) -> int | None:
    """The host PID of the guest's init (PID 1 in its own PID namespace), if it runs."""
    for pid in netns.pids(node.netns):
        try:
            with open(f"/proc/{pid}/status") as f:
                nspid = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
        except OSError:
            continue
        if len(nspid) > 1 and nspid[-1] == "1":
            return pid
    return None


def booted_at(node: LabNode) -> float | None:
    try:
        return float((Path(node.dir) / "booted-at").read_text())
    except (OSError, ValueError):
        return None


def stop(nodes: list[LabNode], grace: float = 3.0) -> None:
    """Power the nodes off together: SIGTERM to each supervisor, one shared bounded wait, then SIGKILL
    of everything still running in their namespaces (a few guests hang in halt)."""
    for n in nodes:
        pid = supervisor_pid(n)
        if pid and alive(pid):
            send(pid, signal.SIGTERM)
        elif (init := _guest_init(n)) is not None:  # no supervisor (killed): power the guest off itself
            send(init, signal.SIGRTMIN + 4)
    # Once a guest's init is gone its whole PID namespace is gone: the processes seen now are enough.
    survivors = wait_gone([p for n in nodes for p in _node_pids(n)], grace)
    for pid in survivors + [p for n in nodes for p in _node_pids(n)]:
        send(pid, signal.SIGKILL)
    wait_gone([p for n in nodes for p in _node_pids(n)], 5.0)
    left = [n.name for n in nodes if _node_pids(n)]
    if left:
        raise LabError(f"processes of nodes {', '.join(left)} did not exit after SIGKILL")


def kill(node: LabNode) -> None:
    """The machine dies at once, as in a power cut: SIGKILL to its supervisor, systemd-nspawn and every
    process in its namespace, without a signal the guest could act on first. Its disk and host-side
    resources stay (`power_off` releases them, `power_on` boots it again on the same disk)."""
    for pid in _node_pids(node):
        send(pid, signal.SIGKILL)
    wait_gone(_node_pids(node), 5.0)
    left = _node_pids(node)
    if left:
        raise LabError(f"processes of node {node.name} did not exit after SIGKILL: {left}")


def cleanup(node: LabNode) -> None:
    """Remove what the node held on the host once its processes are gone: loop devices backed by its
    files, its overlay mount, its namespace and veth, its folder."""
    d = Path(node.dir)
    _detach_loops(d)
    root = d / "root"
    umount = ["umount", str(root)]
    if os.path.ismount(root) and subprocess.run(umount, capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)
    netns.delete(node.netns, node.veth)
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)


def _node_pids(node: LabNode) -> list[int]:
    d = Path(node.dir)
    own = [p for p in (read_pid(d / "supervisor.pid"), read_pid(d / "nspawn.pid")) if p and alive(p)]
    return own + [p for p in _nspawns_of(d) if p not in own] + netns.pids(node.netns)


def _nspawns_of(d: Path) -> list[int]:
    """systemd-nspawn processes booting this node's root, also one whose PID file was never written (its
    supervisor stopped while starting it): a stop must find it before it joins the namespace."""
    want = f"--directory={d / 'root'}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                args = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if want in args and args[0].endswith(b"systemd-nspawn"):
                found.append(int(proc.name))
    return found


def _detach_loops(d: Path) -> None:
    res = subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True, check=False)
    if res.returncode != 0 or not res.stdout.strip():
        return
    prefix = str(d) + "/"
    for dev in json.loads(res.stdout).get("loopdevices", []):
        if str(dev.get("back-file") or "").startswith(prefix):
            subprocess.run(["losetup", "-d", dev["name"]], capture_output=True, check=False)


def add_disk(node: LabNode, size_mb: int) -> str:
    """Give a running node one more empty disk, as a cloud gives an instance-store volume: a sparse
    file in the node's folder on a loop device, made in the guest's /dev now and bound into it at every
    later boot (the supervisor reads ``binds``). Detached with the node (cleanup). Returns the device."""
    d = Path(node.dir)
    n = len(list(d.glob("disk-*.img")))
    img = d / f"disk-{n}.img"
    with open(img, "wb") as f:
        f.truncate(size_mb << 20)
    res = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        img.unlink()
        raise LabError(f"no loop device for a disk of {node.name}: {res.stderr.strip()}")
    dev = res.stdout.strip()
    try:
        init = _guest_init(node)
        if init is None:
            raise LabError(f"{node.name} is not running: cannot give it a disk")
        rdev = os.stat(dev).st_rdev
        _run(["nsenter", "-t", str(init), "-m", "--", "mknod", dev, "b", str(os.major(rdev)), str(os.minor(rdev))])
    except BaseException:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
        img.unlink()
        raise
    with open(d / "binds", "a") as f:
        f.write(dev + "\n")
    return dev


def _run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed: {res.stderr.strip()}")
