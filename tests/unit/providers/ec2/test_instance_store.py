"""Instance-store volumes: which block device mappings a type needs, and the launch template's disks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2.nativetypes import NativeEnvironment
from moto.ec2.models.instance_types import INSTANCE_TYPES

from vcloud_ansible.providers.ec2.api import instance_store_mappings

ROLE_VARS = Path(__file__).resolve().parents[4] / "roles" / "provider_ec2" / "vars" / "main.yml"


@pytest.mark.parametrize(("instance_type", "devices"), [
    ("t3.micro", []),  # no instance store
    ("i3.large", []),  # NVMe instance store: attached without a mapping
    ("m3.medium", ["/dev/xvdb"]),
    ("c3.large", ["/dev/xvdb", "/dev/xvdc"]),  # the old swift workers' two SSDs
    ("d2.xlarge", ["/dev/xvdb", "/dev/xvdc", "/dev/xvdd"]),
])
def test_mappings_from_the_instance_type(instance_type: str, devices: list[str]) -> None:
    # moto's copy of the EC2 instance-type catalogue, in the API's own shape
    mappings = instance_store_mappings(dict(INSTANCE_TYPES[instance_type]))
    assert [m["DeviceName"] for m in mappings] == devices
    assert [m["VirtualName"] for m in mappings] == [f"ephemeral{i}" for i in range(len(devices))]


def _disk(**given: Any) -> Any:
    """The role's _provider_ec2_disk as Ansible evaluates it (native types)."""
    role_vars = yaml.safe_load(ROLE_VARS.read_text())
    env = NativeEnvironment()
    ctx = {"provider_ec2_root_device_name": "/dev/xvda", "provider_ec2_root_volume_size": 0,
           "provider_ec2_instance_store": [], **given}
    ctx["_provider_ec2_root_disk"] = env.from_string(role_vars["_provider_ec2_root_disk"]).render(ctx)
    return env.from_string(role_vars["_provider_ec2_disk"]).render(ctx)


def test_launch_template_disks() -> None:
    assert _disk() == {}
    store = instance_store_mappings(dict(INSTANCE_TYPES["c3.large"]))
    assert _disk(provider_ec2_instance_store=store) == {"BlockDeviceMappings": store}
    both = _disk(provider_ec2_instance_store=store, provider_ec2_root_volume_size=40)
    assert both["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 40
    assert both["BlockDeviceMappings"][1:] == store
