"""The frozen Debian base image every lab node boots from (built once with mmdebstrap, cached).

The cache key is a hash of the recipe (release, mirrors, packages, hooks), so the image is rebuilt
only when the recipe changes. Building into a temporary folder and renaming makes it atomic; a lock
keeps two vca processes from building the same image at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import LabError
from .hostinfo import apt_sources, debian_codename

PACKAGES = (
    "openssh-server", "systemd-sysv", "dbus", "python3", "python3-apt", "iproute2", "sudo", "curl",
    "ca-certificates", "procps", "tmux", "rsync", "less", "xz-utils", "bzip2", "zstd",
)

# Runs inside the finished tree ($1). Host keys and machine-id are removed so that every node gets
# its own; timers that wake up idle nodes are masked (they would compete for the host's few cores).
CUSTOMIZE = (
    'rm -f "$1"/etc/ssh/ssh_host_*',
    ': > "$1"/etc/machine-id',
    'rm -f "$1"/var/lib/dbus/machine-id',
    'mkdir -p "$1"/etc/ssh/sshd_config.d "$1"/root/.ssh',
    'chmod 700 "$1"/root/.ssh',
    'printf "HostKey /etc/ssh/ssh_host_ed25519_key\\nPermitRootLogin prohibit-password\\n'
    'PasswordAuthentication no\\nUseDNS no\\nMaxStartups 200:30:400\\nMaxSessions 64\\n" '
    '> "$1"/etc/ssh/sshd_config.d/vca.conf',
    'for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer '
    'systemd-tmpfiles-clean.timer dpkg-db-backup.timer; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done',
    'ln -sf /dev/null "$1"/etc/systemd/system/getty@.service',
    # Units that can only fail in a container: the overlay root cannot be remounted, and the network
    # is configured from the host (netns + veth), not by ifupdown. A failed unit reads as "degraded".
    'for u in systemd-remount-fs.service ifupdown-pre.service networking.service; do '
    'ln -sf /dev/null "$1/etc/systemd/system/$u"; done',
    # The boot record in utmp/wtmp: failed at boot on a loaded host (two test processes), leaving the
    # node "degraded"; a lab node's `last reboot` is not worth that.
    'for u in systemd-update-utmp.service systemd-update-utmp-runlevel.service; do '
    'ln -sf /dev/null "$1/etc/systemd/system/$u"; done',
    'ln -sf /dev/null "$1"/etc/systemd/system/console-getty.service',
)


@dataclass(frozen=True)
class ImageRecipe:
    suite: str
    mirrors: tuple[str, ...]
    packages: tuple[str, ...] = PACKAGES
    customize: tuple[str, ...] = CUSTOMIZE
    variant: str = "important"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_host(cls) -> ImageRecipe:
        sources = apt_sources()
        if not sources:
            raise LabError(
                "no apt sources found in /etc/apt",
                "the lab builds its image from the host's Debian mirror; configure apt first",
            )
        lines = tuple(line for s in sources for line in s.lines())
        return cls(suite=debian_codename(), mirrors=lines)

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def ensure_image(
    image_dir: Path, recipe: ImageRecipe, say: Callable[[str], None] = lambda _m: None
) -> Path:
    """Return the rootfs of the image for ``recipe``, building it first if it is not cached."""
    final = image_dir / recipe.key()
    rootfs = final / "rootfs"
    if (final / "recipe.json").exists():
        return rootfs
    image_dir.mkdir(parents=True, exist_ok=True)
    with open(image_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "recipe.json").exists():  # another process built it while we waited
            return rootfs
        _build(final, recipe, say)
        _prune(image_dir, keep=final)
    return rootfs


def _prune(image_dir: Path, keep: Path) -> None:
    """Drop images of older recipes that no node uses any more (their rootfs is no overlay lower)."""
    mounts = Path("/proc/mounts").read_text()
    for old in image_dir.iterdir():
        if old.is_dir() and old != keep and f"lowerdir={old / 'rootfs'}" not in mounts:
            shutil.rmtree(old, ignore_errors=True)


def _build(final: Path, recipe: ImageRecipe, say: Callable[[str], None]) -> None:
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    say(f"building the lab base image (Debian {recipe.suite}, once; about a minute)")
    started = time.monotonic()
    cmd = [
        "mmdebstrap", f"--variant={recipe.variant}", "--quiet",
        f"--include={','.join(recipe.packages)}",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        '--aptopt=Acquire::Languages "none"',
        *(f"--customize-hook={hook}" for hook in recipe.customize),
        recipe.suite, str(tmp / "rootfs"), *recipe.mirrors,
    ]
    log = tmp / "build.log"
    with open(log, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise LabError(
            f"building the lab base image failed (mmdebstrap exit {rc}): {' | '.join(tail)}",
            f"see {log}; the image is built from the host's apt mirrors, check that apt-get update works",
        )
    (tmp / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2))
    tmp.rename(final)
    say(f"lab base image ready in {time.monotonic() - started:.0f} s")
