"""Lab-wide settings. The lab is machine-wide (root-owned), unlike per-user cluster state."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabConfig:
    root: Path  # node folders, the lab registry, the apt proxy's cache
    image_dir: Path  # cached base images, one folder per recipe hash
    subnet: ipaddress.IPv4Network  # the bridge's network; the host side takes the first address
    bridge: str
    apt_proxy_port: int

    @property
    def gateway(self) -> str:
        return str(next(self.subnet.hosts()))

    @property
    def apt_proxy(self) -> str:
        return f"http://{self.gateway}:{self.apt_proxy_port}"

    @classmethod
    def from_env(cls) -> LabConfig:
        e = os.environ
        return cls(
            root=Path(e.get("VCA_LAB_DIR", "/var/lib/vca-lab")),
            image_dir=Path(e.get("VCA_LAB_IMAGE_DIR", "/var/cache/vca-lab/images")),
            subnet=ipaddress.IPv4Network(e.get("VCA_LAB_SUBNET", "10.213.0.0/24")),
            bridge=e.get("VCA_LAB_BRIDGE", "vcabr0"),
            apt_proxy_port=int(e.get("VCA_LAB_APT_PROXY_PORT", "3142")),
        )
