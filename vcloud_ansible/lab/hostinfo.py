"""Facts about the host the lab runs on: root, system tools, the Debian release and its apt mirrors."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvironmentProblem

# tool -> the Debian package that provides it
LAB_TOOLS: dict[str, str] = {
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "apt-cacher-ng": "apt-cacher-ng",
    "mount": "mount",
    "losetup": "mount",
}


def require_root(what: str = "the local lab") -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            f"{what} needs root (it creates network namespaces, mounts and systemd-nspawn machines)",
            "run vca as root, or use --provider static or --provider ec2",
        )


def require_tools(tools: dict[str, str] | None = None) -> None:
    missing = {t: p for t, p in (tools or LAB_TOOLS).items() if shutil.which(t) is None}
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        raise EnvironmentProblem(
            f"missing system tools: {', '.join(sorted(missing))}",
            f"install them with: apt-get install {pkgs} (or run `make host-deps`)",
        )


# Each booted node's systemd holds several inotify instances; the kernel's default of 128 per user
# stops new nodes from booting (silently) at about 20 nodes on the whole machine.
SYSCTL_MINIMUMS = {
    "fs/inotify/max_user_instances": 8192,
    "fs/inotify/max_user_watches": 524288,
}


def raise_kernel_limits(say: Callable[[str], None]) -> None:
    for key, minimum in SYSCTL_MINIMUMS.items():
        path = Path("/proc/sys") / key
        try:
            current = int(path.read_text())
            if current < minimum:
                path.write_text(str(minimum))
                say(f"raised {key.replace('/', '.')} from {current} to {minimum} for the lab's nodes")
        except (OSError, ValueError) as exc:
            raise EnvironmentProblem(
                f"cannot raise {key.replace('/', '.')} to {minimum} ({exc})",
                f"set it with: sysctl -w {key.replace('/', '.')}={minimum}",
            ) from None


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]

    def lines(self) -> list[str]:
        return [f"deb {self.uri} {s} {' '.join(self.components)}" for s in self.suites]


def debian_codename(os_release: Path = Path("/etc/os-release")) -> str:
    text = os_release.read_text() if os_release.exists() else ""
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    return m.group(1) if m else "bookworm"


def apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """The host's binary apt sources (deb822 .sources and one-line .list files), in file order.

    The lab never names a mirror of its own: it uses whatever the host is configured with.
    """
    files: list[Path] = []
    if (etc_apt / "sources.list").exists():
        files.append(etc_apt / "sources.list")
    d = etc_apt / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    out: list[AptSource] = []
    for f in files:
        text = f.read_text(errors="replace")
        out += _parse_deb822(text) if f.suffix == ".sources" else _parse_one_line(text)
    return out


def _parse_one_line(text: str) -> list[AptSource]:
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", "", line)  # drop [signed-by=...] options
        parts = line.split()
        if len(parts) >= 3:
            out.append(AptSource(parts[1], (parts[2],), tuple(parts[3:])))
    return out


def _parse_deb822(text: str) -> list[AptSource]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1].isspace() and key:
                fields[key] += " " + raw.strip()
            elif ":" in raw:
                key, _, val = raw.partition(":")
                key = key.strip().lower()
                fields[key] = val.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            suites = tuple(fields.get("suites", "").split())
            out.append(AptSource(uri, suites, tuple(fields.get("components", "").split())))
    return out
