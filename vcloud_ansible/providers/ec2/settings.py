"""Settings of provider ``ec2``: what they are, where they come from, how they are checked.

Each setting is declared once in SETTINGS (providers.settings.Setting), which gives it its flag, its
``VCA_EC2_*`` variable and its key in the spec file's ``ec2:`` section. Sources, strongest first:
command-line flags, environment variables (click reads both), the spec file (``--spec``), the settings
stored with the cluster, then the declared defaults. The region falls back to the AWS chain
(``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile). Everything here is pure: no AWS call, no
boto3 import; ec2_api checks the values against EC2.

Credentials are never settings: boto3 finds them through the standard chain (environment, ~/.aws,
profiles, instance roles) and vca stores none of them.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...errors import UsageError
from ...node import ROLES
from ..settings import Setting, check_known

# Debian's own AWS account publishes the official Debian AMIs; "amazon" and "self" are trusted too.
# An AMI found by name from any other owner could be anyone's image with a look-alike name.
DEFAULT_IMAGE_NAME = "debian-12-amd64-*"
DEFAULT_IMAGE_OWNERS = "self,amazon,136693071363"
SSH_VIA = ("public", "private", "tag")
SHUTDOWN_BEHAVIORS = ("stop", "terminate")  # InstanceInitiatedShutdownBehavior

_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_AMI_RE = re.compile(r"^ami-[0-9a-f]{8,17}$")
_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_LIFETIME_RE = re.compile(r"^(\d+)([smhd])$")
MAX_LIFETIME_DAYS = 365  # longer is a typo, and beyond some length no date can hold it
_PORTS_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp))?$")
_SG_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")
_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")


def _ec2(key: str, help: str, **how: Any) -> Setting:
    return Setting("ec2", key, help, **how)


SETTINGS: tuple[Setting, ...] = (
    _ec2("region", "AWS region, e.g. eu-west-1. Default: AWS_REGION, AWS_DEFAULT_REGION or the "
         "profile's region. Fixed when the cluster is created."),
    _ec2("image", "AMI id for new nodes (ami-...).", metavar="AMI"),
    _ec2("image_name", f"Find the AMI by name (wildcards allowed), the newest wins. Default when no "
         f"--image: {DEFAULT_IMAGE_NAME}.", metavar="PATTERN"),
    _ec2("image_owner", f"Owners trusted for --image-name, comma separated. Default: "
         f"{DEFAULT_IMAGE_OWNERS}.", metavar="OWNERS"),
    _ec2("instance_type", "Instance type.", metavar="TYPE", default="t3.micro"),
    _ec2("key_name", "Use this existing key pair (the cluster's own key is still authorized through "
         "cloud-init). Default: vca imports the cluster's key as vca-<cluster>-<key hash>.", metavar="NAME"),
    _ec2("security_group", "Use this existing security group (sg-...) instead of one made by vca.",
         metavar="SG"),
    _ec2("vpc", "VPC for the cluster (vpc-...). Default: the subnet's VPC, else the default VPC.",
         metavar="VPC"),
    _ec2("subnet", "Subnet for new nodes (subnet-...). Default: the VPC's default subnet.", metavar="SUBNET"),
    _ec2("user", "Login user of the image (admin on Debian images).", metavar="USER", default="admin"),
    _ec2("root_volume_size", "Root volume size in GiB. Default: the image's.", kind="int", metavar="GIB"),
    _ec2("user_data", "Init script (cloud-init user-data) run by every new node at first boot.",
         metavar="FILE"),
    _ec2("tags", "Extra tag on everything vca makes; repeatable.", kind="map", metavar="KEY=VALUE"),
    _ec2("instance_profile", "IAM instance profile (name or ARN) for the nodes.", metavar="PROFILE"),
    _ec2("ssh_cidrs", "Address range allowed to reach SSH; repeatable. Default: this machine's "
         "public address (the VPC's range with --ssh-via private). Never 0.0.0.0/0 unless given.",
         kind="list", metavar="CIDR"),
    _ec2("open_ports", "Extra port or range opened to the --ssh-cidr ranges, e.g. 8080, "
         "8000-8100, 53/udp; repeatable.", kind="list", metavar="PORTS"),
    _ec2("ssh_via", "How SSH reaches nodes: public address, private address (from inside the VPC) "
         "or only the vca:ssh_host/vca:ssh_port tags. A vca:ssh_host tag always wins.",
         kind="choice", choices=SSH_VIA, default="public"),
    _ec2("lifetime", "Time after which a node counts as expired (tag vca:expires-at), e.g. 8h, 3d; "
         "at most 365d; 0 for never.", metavar="DURATION", default="24h"),
    _ec2("spot", "Request spot instances for the nodes this run adds (e.g. `vca provision 4 --role worker "
         "--spot`); lifecycle shown by `vca status`.", kind="bool", default=False, stored=False),
    _ec2("max_price", "Highest hourly price (USD) for the spot instances of this run; needs --spot. "
         "Default: the on-demand price.", metavar="USD", stored=False),
    _ec2("shutdown_behavior", "What a node's own poweroff does to its instance: stop (disk kept) or "
         "terminate (`vca jobs run` sets terminate).", kind="choice", choices=SHUTDOWN_BEHAVIORS, default="stop"),
    _ec2("ssh_timeout", "Seconds to wait for new nodes to accept SSH.", kind="int", metavar="SECONDS",
         default=300),
    _ec2("owner", "Owner recorded in the vca:owner tag. Default: <user>@<host>.", metavar="OWNER"),
    _ec2("role", "Role of the nodes added by this run (vca:role). Default: node 0 head, "
         "others worker.", kind="choice", choices=ROLES, stored=False),
)
# Per node role, stored: the instance type and image of that role's nodes, over --instance-type/--image
# (flags --head-instance-type, --worker-image, ...; spec keys head_instance_type, ...).
SETTINGS += tuple(_ec2(f"{r}_{what}", f"{help} for {r} nodes (over --{what.replace('_', '-')}).", metavar=meta)
                  for r in ROLES
                  for what, help, meta in (("instance_type", "Instance type", "TYPE"), ("image", "AMI id", "AMI")))
BY_KEY = {s.key: s for s in SETTINGS}
DEFAULTS: dict[str, Any] = {s.key: s.initial() for s in SETTINGS if s.initial() is not None}


@dataclass(frozen=True)
class Ec2Settings:
    """The resolved settings of one cluster, as stored in cluster.json (plus per-run ``role``)."""

    region: str
    owner: str
    image: str | None = None
    image_name: str | None = None
    image_owner: str | None = None
    instance_type: str = "t3.micro"
    key_name: str | None = None
    security_group: str | None = None
    vpc: str | None = None
    subnet: str | None = None
    user: str = "admin"
    root_volume_size: int | None = None
    user_data: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    instance_profile: str | None = None
    ssh_cidrs: tuple[str, ...] = ()
    open_ports: tuple[str, ...] = ()
    ssh_via: str = "public"
    lifetime: str = "24h"
    spot: bool = False
    max_price: str | None = None
    shutdown_behavior: str = "stop"
    ssh_timeout: int = 300
    role: str | None = None
    head_instance_type: str | None = None
    head_image: str | None = None
    worker_instance_type: str | None = None
    worker_image: str | None = None
    dev_instance_type: str | None = None
    dev_image: str | None = None

    def for_role(self, role: str | None) -> Ec2Settings:
        """The settings of nodes of ``role`` (None: the cluster-wide ones): its own type and image."""
        if role is None:
            return self
        image = getattr(self, f"{role}_image")
        return replace(self, role=role, instance_type=getattr(self, f"{role}_instance_type") or self.instance_type,
                       image=image or self.image, image_name=None if image else self.image_name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ec2Settings:
        d = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None}
        if "tags" in d:
            d["tags"] = tuple(sorted(dict(d["tags"]).items()))
        for k in ("ssh_cidrs", "open_ports"):
            if k in d:
                d[k] = tuple(d[k])
        if "region" not in d or "owner" not in d:
            raise UsageError("the cluster's EC2 settings lack a region or owner",
                             "the cluster was not made by this vca: tear it down with its own vca")
        return cls(**d)

    @property
    def lifetime_seconds(self) -> int | None:
        return parse_lifetime(self.lifetime)

    @property
    def image_owners(self) -> list[str]:
        return [o.strip() for o in (self.image_owner or DEFAULT_IMAGE_OWNERS).split(",") if o.strip()]


def parse_lifetime(text: str) -> int | None:
    """'8h' -> 28800; '0' or 'never' -> None."""
    text = str(text).strip().lower()
    if text in ("0", "never", "none"):
        return None
    m = _LIFETIME_RE.match(text)
    if not m:
        raise UsageError(f"invalid lifetime '{text}'", "use a number with s, m, h or d (e.g. 8h, 3d), or 0")
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if seconds > MAX_LIFETIME_DAYS * 86400:
        raise UsageError(f"lifetime '{text}' is longer than {MAX_LIFETIME_DAYS} days",
                         "give a shorter one (e.g. 8h, 30d), or 0 for nodes that never expire")
    return seconds


def parse_ports(text: str) -> tuple[int, int, str]:
    """'8080' -> (8080, 8080, 'tcp'); '8000-8100/udp' -> (8000, 8100, 'udp')."""
    m = _PORTS_RE.match(str(text).strip())
    if not m:
        raise UsageError(f"invalid port range '{text}'", "use PORT, FROM-TO, optionally /tcp or /udp")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if not 1 <= lo <= hi <= 65535:
        raise UsageError(f"invalid port range '{text}'", "ports are 1-65535, the lower one first")
    return lo, hi, m.group(3) or "tcp"


def resolve(stored: dict[str, Any], overrides: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Merge ``overrides`` (spec file, env, flags) over ``stored``; check and normalize every value.

    Returns the dict to store in cluster.json, plus ``role`` when given (dropped before storing).
    """
    check_known("ec2", SETTINGS, overrides)
    given = {k: v for k, v in overrides.items() if v is not None and v != () and v != []}
    if not creating and "region" in given and given["region"] != stored.get("region"):
        raise UsageError(f"the cluster lives in region {stored.get('region')}, not {given['region']}",
                         "leave out the region, or pick another cluster name with -c")
    out: dict[str, Any] = {**DEFAULTS, **stored}
    out.update({k: _normalize(k, v) for k, v in given.items()})
    if not out.get("region"):
        out["region"] = default_region()
    if not out.get("owner"):
        out["owner"] = default_owner()
    _check(out)
    return out


def stored_part(settings: dict[str, Any]) -> dict[str, Any]:
    """What goes into cluster.json: everything but the per-run settings."""
    return {k: v for k, v in settings.items() if k not in BY_KEY or BY_KEY[k].stored}


def default_region() -> str:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        try:
            import boto3

            region = boto3.session.Session().region_name
        except Exception:  # a broken ~/.aws/config: boto3's error is not about the region
            region = None
    if not region:
        raise UsageError("no AWS region given",
                         "use --region, VCA_EC2_REGION, AWS_REGION, or a region in your AWS profile")
    return str(region)


def default_owner() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still tells owners apart
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _normalize(key: str, value: Any) -> Any:
    value = BY_KEY[key].coerce(value)
    if key == "user_data":
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise UsageError(f"user-data file not found: {path}")
        return str(path.resolve())
    return value


def _check(s: dict[str, Any]) -> None:
    """Shape checks that need no AWS call; ec2_api.preflight checks existence."""
    if not _REGION_RE.match(s["region"]):
        raise UsageError(f"invalid AWS region '{s['region']}'", "regions look like us-east-1 or eu-west-3")
    for key in ("image", *(f"{r}_image" for r in ROLES)):
        if s.get(key) and not _AMI_RE.match(s[key]):
            raise UsageError(f"invalid AMI id '{s[key]}'", "AMI ids look like ami-0123456789abcdef0")
    for key in ("instance_type", *(f"{r}_instance_type" for r in ROLES)):
        if s.get(key) and not _TYPE_RE.match(s[key]):
            raise UsageError(f"invalid instance type '{s[key]}'", "types look like t3.micro")
    if s.get("max_price") is not None:
        if not s.get("spot"):
            raise UsageError("--max-price needs --spot", "add --spot, or leave out --max-price")
        if not re.fullmatch(r"\d+(\.\d+)?", str(s["max_price"])) or float(s["max_price"]) <= 0:
            raise UsageError(f"invalid --max-price '{s['max_price']}'", "an hourly price in USD, e.g. 0.05")
    for key, rx in (("security_group", _SG_RE), ("subnet", _SUBNET_RE), ("vpc", _VPC_RE)):
        if s.get(key) and not rx.match(s[key]):
            raise UsageError(f"invalid {key.replace('_', ' ')} id '{s[key]}'")
    for cidr in s["ssh_cidrs"]:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise UsageError(f"invalid address range '{cidr}'", "use CIDR notation, e.g. 203.0.113.7/32") \
                from None
    for ports in s["open_ports"]:
        parse_ports(ports)
    for key in s["tags"]:
        if key.lower().startswith(("aws:", "vca:")) or not 1 <= len(key) <= 128:
            raise UsageError(f"invalid tag key '{key}'", "1-128 characters, not starting with aws: or vca:")
    for key, value in s["tags"].items():
        if len(value) > 256:
            raise UsageError(f"tag '{key}' has a value longer than 256 characters")
    parse_lifetime(s["lifetime"])
    if s.get("root_volume_size") is not None and not 1 <= s["root_volume_size"] <= 16384:
        raise UsageError("--root-volume-size must be 1-16384 GiB")
    if s["ssh_timeout"] < 10:
        raise UsageError("--ssh-timeout must be at least 10 seconds")
    if s["ssh_via"] not in SSH_VIA:
        raise UsageError(f"--ssh-via must be one of {', '.join(SSH_VIA)}")
    if s.get("role") is not None and s["role"] not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}")
