"""Provider ec2 settings: sources, precedence, checks (no AWS call)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.providers.ec2.settings import (
    BY_KEY,
    Ec2Settings,
    parse_lifetime,
    parse_ports,
    resolve,
    stored_part,
)


@pytest.fixture(autouse=True)
def _no_aws_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))


def test_defaults_and_region_from_the_aws_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    s = resolve({}, {"image": "ami-0123456789abcdef0"}, creating=True)
    assert s["region"] == "eu-west-3"
    assert s["instance_type"] == "t3.micro" and s["ssh_via"] == "public" and s["lifetime"] == "24h"
    assert "@" in s["owner"]
    settings = Ec2Settings.from_dict(s)
    assert settings.lifetime_seconds == 86400
    assert settings.image_owners == ["self", "amazon", "136693071363"]


def test_no_region_anywhere_is_refused() -> None:
    with pytest.raises(UsageError, match="no AWS region given"):
        resolve({}, {}, creating=True)


def test_overrides_win_over_stored_and_region_is_fixed() -> None:
    stored = resolve({}, {"region": "us-east-1", "instance_type": "t3.small"}, creating=True)
    later = resolve(stored, {"instance_type": "c6i.large"}, creating=False)
    assert later["instance_type"] == "c6i.large" and later["owner"] == stored["owner"]
    with pytest.raises(UsageError, match="lives in region us-east-1"):
        resolve(stored, {"region": "eu-west-1"}, creating=False)


def test_repeatable_values_from_flags_and_from_the_environment() -> None:
    from_flags = resolve({}, {"region": "us-east-1", "tags": ("team=x", "cost=7"),
                              "ssh_cidrs": ("10.0.0.0/8",), "open_ports": ("8080", "53/udp")}, creating=True)
    from_env = resolve({}, {"region": "us-east-1", "tags": "team=x cost=7", "ssh_cidrs": "10.0.0.0/8",
                            "open_ports": "8080 53/udp"}, creating=True)
    assert from_flags == {**from_env, "owner": from_flags["owner"]}
    assert from_flags["tags"] == {"team": "x", "cost": "7"}


def test_per_run_settings_are_not_stored() -> None:
    s = resolve({}, {"region": "us-east-1", "role": "dev"}, creating=True)
    assert s["role"] == "dev" and "role" not in stored_part(s)


@pytest.mark.parametrize(("override", "message"), [
    ({"region": "Mars"}, "invalid AWS region"),
    ({"image": "ubuntu"}, "invalid AMI id"),
    ({"instance_type": "huge"}, "invalid instance type"),
    ({"ssh_cidrs": ["1.2.3.4/40"]}, "invalid address range"),
    ({"open_ports": ["99999"]}, "invalid port range"),
    ({"open_ports": ["90-80"]}, "invalid port range"),
    ({"tags": {"vca:index": "1"}}, "invalid tag key"),
    ({"tags": ["nokey"]}, "invalid tag"),
    ({"lifetime": "soon"}, "invalid lifetime"),
    ({"root_volume_size": "big"}, "must be a whole number"),
    ({"ssh_timeout": 1}, "at least 10 seconds"),
    ({"security_group": "default"}, "invalid security group id"),
    ({"user_data": "/nonexistent/init.sh"}, "user-data file not found"),
    ({"colour": "blue"}, "unknown ec2 setting colour"),
])
def test_bad_values_are_refused(override: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve({}, {"region": "us-east-1", **override}, creating=True)


def test_user_data_is_stored_as_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "init.sh").write_text("#!/bin/sh\necho hi\n")
    monkeypatch.chdir(tmp_path)
    assert resolve({}, {"region": "us-east-1", "user_data": "init.sh"}, creating=True)["user_data"] == str(
        tmp_path / "init.sh")


def test_flags_are_singular_for_repeatable_settings() -> None:
    assert BY_KEY["ssh_cidrs"].flag == "--ssh-cidr"
    assert BY_KEY["tags"].flag == "--tag"
    assert BY_KEY["open_ports"].flag == "--open-port"
    assert BY_KEY["instance_type"].flag == "--instance-type"
    assert BY_KEY["instance_type"].envvar == "VCA_EC2_INSTANCE_TYPE"


def test_ports_and_lifetimes() -> None:
    assert parse_ports("22") == (22, 22, "tcp")
    assert parse_ports("60000-61000/udp") == (60000, 61000, "udp")
    assert parse_lifetime("90m") == 5400
    assert parse_lifetime("0") is None and parse_lifetime("never") is None


def test_lifetimes_beyond_a_year_are_refused() -> None:
    assert parse_lifetime("365d") == 365 * 86400
    for text in ("366d", "99999999999d", "9000h"):
        with pytest.raises(UsageError, match=f"lifetime '{text}' is longer than 365 days"):
            parse_lifetime(text)
    with pytest.raises(UsageError, match="longer than 365 days"):
        resolve({}, {"region": "eu-west-1", "lifetime": "99999999999d"}, creating=True)


def test_defaults_come_from_the_declarations() -> None:
    from vcloud_ansible.providers.ec2.settings import DEFAULTS

    assert DEFAULTS == {"instance_type": "t3.micro", "user": "admin", "ssh_via": "public", "lifetime": "24h",
                        "spot": False, "shutdown_behavior": "stop", "ssh_timeout": 300, "tags": {}, "ssh_cidrs": [],
                        "open_ports": []}
    assert BY_KEY["lifetime"].help_text.endswith("0 for never. Default: 24h.")
    assert BY_KEY["role"].choices == ("head", "worker", "dev") and not BY_KEY["role"].stored


def test_per_role_types_and_images_are_stored_and_spot_is_per_run() -> None:
    s = resolve({}, {"region": "us-east-1", "head_instance_type": "c6i.large", "worker_image": "ami-0123456789abcdef0",
                     "spot": True, "max_price": "0.05"}, creating=True)
    kept = stored_part(s)
    assert kept["head_instance_type"] == "c6i.large" and kept["worker_image"] == "ami-0123456789abcdef0"
    assert "spot" not in kept and "max_price" not in kept
    e = Ec2Settings.from_dict({**s, "image_name": "debian-*"})
    head, worker = e.for_role("head"), e.for_role("worker")
    assert (head.instance_type, head.image, head.image_name, head.role) == ("c6i.large", None, "debian-*", "head")
    assert (worker.instance_type, worker.image, worker.image_name) == ("t3.micro", "ami-0123456789abcdef0", None)
    assert e.for_role(None) is e
    assert BY_KEY["head_instance_type"].flag == "--head-instance-type"


@pytest.mark.parametrize(("override", "message"), [
    ({"max_price": "0.05"}, "--max-price needs --spot"),
    ({"spot": True, "max_price": "-1"}, "invalid --max-price"),
    ({"spot": True, "max_price": "0"}, "invalid --max-price"),
    ({"dev_instance_type": "huge"}, "invalid instance type 'huge'"),
    ({"head_image": "ubuntu"}, "invalid AMI id 'ubuntu'"),
])
def test_bad_shape_settings_are_refused(override: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve({}, {"region": "us-east-1", **override}, creating=True)
