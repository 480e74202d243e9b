"""Settings of provider ``ec2``: what they are, where they come from, how they are checked.

Sources, strongest first: command-line flags, ``VCA_EC2_*`` environment variables (click reads both),
the ``ec2:`` section of a cluster spec file (``--spec``), the settings stored with the cluster, then
defaults. The region falls back to the AWS chain (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile).
Everything here is pure: no AWS call, no boto3 import; ec2_api checks the values against EC2.

Credentials are never settings: boto3 finds them through the standard chain (environment, ~/.aws,
profiles, instance roles) and vca stores none of them.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...errors import UsageError
from ...node import ROLES

# Debian's own AWS account publishes the official Debian AMIs; "amazon" and "self" are trusted too.
# An AMI found by name from any other owner could be anyone's image with a look-alike name.
DEFAULT_IMAGE_NAME = "debian-12-amd64-*"
DEFAULT_IMAGE_OWNERS = "self,amazon,136693071363"
SSH_VIA = ("public", "private", "tag")

_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_AMI_RE = re.compile(r"^ami-[0-9a-f]{8,17}$")
_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_LIFETIME_RE = re.compile(r"^(\d+)([smhd])$")
MAX_LIFETIME_DAYS = 365  # longer is a typo, and beyond some length no date can hold it
SPEC_MAX_BYTES = 1 << 20  # a cluster spec is a few lines; /dev/zero or a disk image is not one
_PORTS_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp))?$")
_SG_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")
_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class Setting:
    """One setting: its key in cluster.json and the spec file, its flag, and how to read it."""

    key: str
    help: str
    kind: str = "str"  # str | int | list | map | bool | choice
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    stored: bool = True  # False: applies to one `vca provision` run only (e.g. the role of new nodes)

    @property
    def flag(self) -> str:
        name = self.key.replace("_", "-")
        # repeatable flags are singular: --tag K=V --tag K2=V2, --ssh-cidr A --ssh-cidr B
        return "--" + (name.removesuffix("s") if self.kind in ("list", "map") else name)

    @property
    def envvar(self) -> str:
        return "VCA_EC2_" + self.key.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("region", "AWS region, e.g. eu-west-1. Default: AWS_REGION, AWS_DEFAULT_REGION or the "
            "profile's region. Fixed when the cluster is created."),
    Setting("image", "AMI id for new nodes (ami-...).", metavar="AMI"),
    Setting("image_name", f"Find the AMI by name (wildcards allowed), the newest wins. Default when no "
            f"--image: {DEFAULT_IMAGE_NAME}.", metavar="PATTERN"),
    Setting("image_owner", f"Owners trusted for --image-name, comma separated. Default: "
            f"{DEFAULT_IMAGE_OWNERS}.", metavar="OWNERS"),
    Setting("instance_type", "Instance type. Default: t3.micro.", metavar="TYPE"),
    Setting("key_name", "Use this existing key pair (the cluster's own key is still authorized through "
            "cloud-init). Default: vca imports the cluster's key as vca-<cluster>-<key hash>.",
            metavar="NAME"),
    Setting("security_group", "Use this existing security group (sg-...) instead of one made by vca.",
            metavar="SG"),
    Setting("vpc", "VPC for the cluster (vpc-...). Default: the subnet's VPC, else the default VPC.",
            metavar="VPC"),
    Setting("subnet", "Subnet for new nodes (subnet-...). Default: the VPC's default subnet.",
            metavar="SUBNET"),
    Setting("user", "Login user of the image. Default: admin (Debian images).", metavar="USER"),
    Setting("root_volume_size", "Root volume size in GiB. Default: the image's.", kind="int",
            metavar="GIB"),
    Setting("user_data", "Init script (cloud-init user-data) run by every new node at first boot.",
            metavar="FILE"),
    Setting("tags", "Extra tag on everything vca makes; repeatable.", kind="map", metavar="KEY=VALUE"),
    Setting("instance_profile", "IAM instance profile (name or ARN) for the nodes.", metavar="PROFILE"),
    Setting("ssh_cidrs", "Address range allowed to reach SSH; repeatable. Default: this machine's "
            "public address (the VPC's range with --ssh-via private). Never 0.0.0.0/0 unless given.",
            kind="list", metavar="CIDR"),
    Setting("open_ports", "Extra port or range opened to the --ssh-cidr ranges, e.g. 8080, "
            "8000-8100, 53/udp; repeatable.", kind="list", metavar="PORTS"),
    Setting("ssh_via", "How SSH reaches nodes: public address, private address (from inside the VPC) "
            "or only the vca:ssh_host/vca:ssh_port tags. A vca:ssh_host tag always wins. Default: public.",
            kind="choice", choices=SSH_VIA),
    Setting("lifetime", "Time after which a node counts as expired (tag vca:expires-at), e.g. 8h, 3d; "
            "at most 365d; 0 for never. Default: 24h.", metavar="DURATION"),
    Setting("spot", "Request spot instances.", kind="bool"),
    Setting("ssh_timeout", "Seconds to wait for new nodes to accept SSH. Default: 300.", kind="int",
            metavar="SECONDS"),
    Setting("owner", "Owner recorded in the vca:owner tag. Default: <user>@<host>.", metavar="OWNER"),
    Setting("role", "Role of the nodes added by this run (vca:role). Default: node 0 head, "
            "others worker.", kind="choice", choices=ROLES, stored=False),
)
BY_KEY = {s.key: s for s in SETTINGS}

DEFAULTS: dict[str, Any] = {
    "instance_type": "t3.micro",
    "user": "admin",
    "ssh_via": "public",
    "lifetime": "24h",
    "spot": False,
    "ssh_timeout": 300,
    "tags": {},
    "ssh_cidrs": [],
    "open_ports": [],
}


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
    ssh_timeout: int = 300
    role: str | None = None

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


def parse_tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"invalid tag '{text}'", "use KEY=VALUE")
    return key, value


def read_spec_file(path: Path) -> tuple[str | None, int | None, dict[str, Any]]:
    """A cluster spec file: ``provider``, ``nodes`` and the ``ec2`` settings section."""
    try:
        doc = yaml.safe_load(_read_spec_text(path))
    except yaml.YAMLError as exc:
        raise UsageError(f"spec file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UsageError(f"spec file {path} must be a mapping", "keys: provider, nodes, ec2")
    unknown = sorted(set(doc) - {"provider", "nodes", "ec2"})
    if unknown:
        raise UsageError(f"spec file {path}: unknown key {', '.join(unknown)}", "keys: provider, nodes, ec2")
    ec2 = doc.get("ec2") or {}
    if not isinstance(ec2, dict):
        raise UsageError(f"spec file {path}: 'ec2' must be a mapping of settings")
    nodes = doc.get("nodes")
    if nodes is not None and (not isinstance(nodes, int) or nodes < 1):
        raise UsageError(f"spec file {path}: 'nodes' must be a whole number >= 1")
    provider = doc.get("provider")
    return (str(provider) if provider else None), nodes, dict(ec2)


def _read_spec_text(path: Path) -> str:
    """The text of a spec file: a regular file of at most SPEC_MAX_BYTES, UTF-8 without NUL bytes."""
    try:
        # O_NONBLOCK: opening a FIFO nobody writes to must not hang; regular files ignore it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UsageError(f"cannot read spec file {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"spec file {path} is not a regular file", "give a YAML file")
        data = b""
        while len(data) <= SPEC_MAX_BYTES:  # pread: some kernels return 0 from read() on a fresh file
            chunk = os.pread(fd, SPEC_MAX_BYTES + 1 - len(data), len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise UsageError(f"cannot read spec file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > SPEC_MAX_BYTES:
        raise UsageError(f"spec file {path} is larger than {SPEC_MAX_BYTES >> 20} MiB",
                         "a cluster spec is a short YAML file: provider, nodes, ec2")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise UsageError(f"spec file {path} is not a YAML text file", "give a YAML file: provider, nodes, ec2")
    return text


def resolve(stored: dict[str, Any], overrides: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Merge ``overrides`` (spec file, env, flags) over ``stored``; check and normalize every value.

    Returns the dict to store in cluster.json, plus ``role`` when given (dropped before storing).
    """
    unknown = sorted(set(overrides) - set(BY_KEY))
    if unknown:
        raise UsageError(f"unknown ec2 setting {', '.join(unknown)}",
                         f"known: {', '.join(s.key for s in SETTINGS)}")
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
    s = BY_KEY[key]
    if s.kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise UsageError(f"{s.flag} must be a whole number, got '{value}'") from None
    if s.kind == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if s.kind == "list":
        items = value.split() if isinstance(value, str) else list(value)
        return [str(v).strip() for v in items if str(v).strip()]
    if s.kind == "map":
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        pairs = value.split() if isinstance(value, str) else list(value)
        return dict(parse_tag(str(p)) for p in pairs)
    if key == "user_data":
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise UsageError(f"user-data file not found: {path}")
        return str(path.resolve())
    return str(value).strip()


def _check(s: dict[str, Any]) -> None:
    """Shape checks that need no AWS call; ec2_api.preflight checks existence."""
    if not _REGION_RE.match(s["region"]):
        raise UsageError(f"invalid AWS region '{s['region']}'", "regions look like us-east-1 or eu-west-3")
    if s.get("image") and not _AMI_RE.match(s["image"]):
        raise UsageError(f"invalid AMI id '{s['image']}'", "AMI ids look like ami-0123456789abcdef0")
    if not _TYPE_RE.match(s["instance_type"]):
        raise UsageError(f"invalid instance type '{s['instance_type']}'", "types look like t3.micro")
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
