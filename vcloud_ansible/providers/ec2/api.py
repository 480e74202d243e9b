"""The few EC2 calls vca makes from Python: read-only checks before anything is created, listing the
cluster's instances from their tags, and finding what a teardown left. Launching and terminating
happen in the provider_ec2 role (playbooks/internal/provision.yml, internal/teardown.yml).

Every call goes through ``aws_errors`` so a missing credential, a refused one or an unknown region
becomes one clear line. The endpoint comes from the AWS chain too (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ...errors import EnvironmentProblem, ProviderError, UsageError
from ...remote.aws import client_config, configured_endpoint
from .settings import DEFAULT_IMAGE_NAME, Ec2Settings

TAG_CLUSTER = "vca:cluster"
TAG_INDEX = "vca:index"
TAG_ROLE = "vca:role"
TAG_OWNER = "vca:owner"
TAG_EXPIRES = "vca:expires-at"
TAG_SSH_HOST = "vca:ssh_host"
TAG_SSH_PORT = "vca:ssh_port"

# States in which an instance exists (and may cost money). Terminated ones linger in the API for a
# while with their tags; shutting-down ones are on their way out.
LIVE_STATES = ("pending", "running", "stopping", "stopped")
PAGE = 1000  # DescribeInstances page size (the API maximum)

_CREDENTIAL_CODES = {"AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch",
                     "RequestExpired", "ExpiredToken", "InvalidToken", "UnrecognizedClientException"}
_CALLER_ADDRESS_URL = "https://checkip.amazonaws.com"

# A frozen endpoint costs at most about MAX_ATTEMPTS * (CONNECT_TIMEOUT or READ_TIMEOUT) seconds
# (vcloud_ansible.remote.aws), said after SAY_WAITING_AFTER seconds.
SAY_WAITING_AFTER = 4.0


@dataclass
class Instance:
    id: str
    state: str
    tags: dict[str, str]
    private_ip: str | None = None
    public_ip: str | None = None
    instance_type: str = ""
    zone: str = ""
    launch_time: str = ""
    lifecycle: str = "on-demand"
    launch_index: int = 0

    @property
    def index(self) -> int | None:
        raw = self.tags.get(TAG_INDEX, "")
        return int(raw) if raw.isdigit() else None

    @property
    def role(self) -> str | None:
        return self.tags.get(TAG_ROLE)

    @property
    def owner(self) -> str | None:
        return self.tags.get(TAG_OWNER)

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> Instance:
        launched = d.get("LaunchTime")
        return cls(
            id=d["InstanceId"], state=d.get("State", {}).get("Name", "unknown"),
            tags={t["Key"]: t["Value"] for t in d.get("Tags", [])},
            private_ip=d.get("PrivateIpAddress") or None, public_ip=d.get("PublicIpAddress") or None,
            instance_type=d.get("InstanceType", ""), zone=d.get("Placement", {}).get("AvailabilityZone", ""),
            launch_time=launched.strftime("%Y-%m-%dT%H:%M:%SZ") if launched is not None else "",
            lifecycle=d.get("InstanceLifecycle") or "on-demand", launch_index=int(d.get("AmiLaunchIndex", 0)),
        )


@dataclass
class Plan:
    """What the read-only checks found out: the values the provision playbook needs."""

    image_id: str
    image_name: str
    root_device: str | None
    vpc_id: str | None  # None: the region's default VPC
    subnet_id: str | None
    ssh_cidrs: list[str] = field(default_factory=list)
    instance_store: list[dict[str, str]] = field(default_factory=list)  # block device mappings to add


def endpoint_for(region: str) -> str:
    """Where EC2 calls for ``region`` go, for messages."""
    try:
        return configured_endpoint() or f"https://ec2.{region}.amazonaws.com"
    except UsageError:
        return os.environ.get("AWS_ENDPOINT_URL", "?")


def client(region: str) -> Any:
    """An EC2 client for ``region`` using the standard AWS credential and endpoint chain.

    The one place vca makes its EC2 clients: the endpoint is checked, timeouts and retries bounded.
    """
    try:
        import boto3
    except ImportError:
        raise EnvironmentProblem("provider ec2 needs boto3", "pip install boto3") from None
    configured_endpoint()
    with aws_errors(region):
        try:
            return boto3.session.Session().client("ec2", region_name=region, config=client_config())
        except ValueError as exc:  # an endpoint from the AWS config file that is not a URL
            raise UsageError(f"cannot use the EC2 endpoint: {exc}",
                             "check endpoint_url in the AWS config and AWS_ENDPOINT_URL") from None


def have_credentials() -> bool:
    """Whether the AWS chain yields credentials, without calling AWS."""
    import boto3

    try:
        return boto3.session.Session().get_credentials() is not None
    except Exception as exc:  # a broken profile names itself in the message
        raise EnvironmentProblem(f"cannot read AWS credentials: {exc}") from None


@contextlib.contextmanager
def aws_errors(region: str, what: str = "EC2") -> Iterator[None]:
    """Turn botocore's exceptions into vca's one-line errors."""
    from botocore import exceptions as bx

    started = time.monotonic()
    endpoint = endpoint_for(region)
    waiting = threading.Timer(SAY_WAITING_AFTER, _say_waiting, (endpoint,))
    waiting.daemon = True
    waiting.start()
    try:
        yield
    except (bx.ReadTimeoutError, bx.ConnectTimeoutError) as exc:
        raise ProviderError(f"the EC2 endpoint {endpoint} did not answer within "
                            f"{time.monotonic() - started:.0f} s: {exc}",
                            "check the network, the region and AWS_ENDPOINT_URL") from None
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise EnvironmentProblem(
            "no AWS credentials found",
            "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`",
        ) from None
    except bx.ProfileNotFound as exc:
        raise EnvironmentProblem(f"AWS profile not found: {exc.kwargs.get('profile')}",
                                 "check AWS_PROFILE and ~/.aws/config") from None
    except bx.ClientError as exc:
        err = exc.response.get("Error", {})
        code, msg = str(err.get("Code", "?")), str(err.get("Message", "")).rstrip(".")
        if code in _CREDENTIAL_CODES:
            raise EnvironmentProblem(f"AWS refused the credentials ({code}): {msg}",
                                     "check the AWS profile or keys vca found in the environment") from None
        if code == "OptInRequired":
            raise UsageError(f"region {region} is not enabled for this account", msg) from None
        raise ProviderError(f"{what} call failed in {region}: {code}: {msg}") from None
    except bx.EndpointConnectionError as exc:
        raise ProviderError(f"cannot reach EC2 in region {region}: {exc}",
                            "check the region, the network and AWS_ENDPOINT_URL") from None
    except bx.BotoCoreError as exc:
        raise ProviderError(f"{what} call failed in {region}: {exc}") from None
    finally:
        waiting.cancel()


_said_waiting: set[str] = set()


def _say_waiting(endpoint: str) -> None:
    """Said once per endpoint and process when a call takes longer than SAY_WAITING_AFTER."""
    if endpoint not in _said_waiting:
        _said_waiting.add(endpoint)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"vca: waiting for the EC2 endpoint {endpoint} ...\n")
            sys.stderr.flush()


def cluster_instances(ec2: Any, cluster: str, region: str, states: tuple[str, ...] = LIVE_STATES
                      ) -> list[Instance]:
    """Every instance tagged with the cluster in ``states``; one call per 1000 instances."""
    filters = [{"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]},
               {"Name": "instance-state-name", "Values": list(states)}]
    out: list[Instance] = []
    with aws_errors(region):
        for page in ec2.get_paginator("describe_instances").paginate(
                Filters=filters, PaginationConfig={"PageSize": PAGE}):
            for res in page.get("Reservations", []):
                out += [Instance.from_api(i) for i in res.get("Instances", [])]
    return out


def instances_by_id(ec2: Any, ids: list[str], region: str) -> dict[str, Instance]:
    """The live instances among ``ids`` (asked by id, one at a time: a missing id fails only itself)."""
    out: dict[str, Instance] = {}
    for iid in dict.fromkeys(ids):
        found = _lookup(region, ec2.describe_instances, "Reservations", ("InvalidInstanceID",), InstanceIds=[iid])
        for inst in (Instance.from_api(i) for r in found for i in r.get("Instances", [])):
            if inst.state in LIVE_STATES:
                out[inst.id] = inst
    return out


def leftovers(ec2: Any, cluster: str, region: str) -> list[str]:
    """What still exists with the cluster's tag: live instances, security groups, key pairs, launch
    templates, volumes. Asked per kind (five calls): DescribeTags also lists the tags of resources
    that are gone (terminated instances for an hour; deleted ones on some EC2 look-alikes)."""
    tagged = [{"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]}]
    left = [f"instance {i.id} ({i.state})" for i in cluster_instances(ec2, cluster, region)]
    with aws_errors(region):
        left += [f"security-group {g['GroupId']}"
                 for g in ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]]
        left += [f"key-pair {k['KeyName']}" for k in ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]]
        for page in ec2.get_paginator("describe_launch_templates").paginate(Filters=tagged):
            left += [f"launch-template {t['LaunchTemplateId']}" for t in page.get("LaunchTemplates", [])]
        for page in ec2.get_paginator("describe_volumes").paginate(Filters=tagged):
            left += [f"volume {v['VolumeId']} ({v['State']})" for v in page.get("Volumes", [])]
    return left


def check_region(ec2: Any, region: str) -> None:
    """Known to botocore (no call), else confirmed by DescribeRegions (new regions, other endpoints)."""
    import botocore.session

    session = botocore.session.get_session()
    for partition in session.get_available_partitions():
        if region in session.get_available_regions("ec2", partition):
            return
    try:
        with aws_errors(region):
            names = {r["RegionName"] for r in ec2.describe_regions(AllRegions=True)["Regions"]}
    except (EnvironmentProblem, UsageError):
        raise
    except Exception:  # no endpoint there, or one that does not know the region: unknown either way
        names = set()
    if region not in names:
        raise UsageError(f"unknown AWS region '{region}'", "regions look like us-east-1 or eu-west-3; "
                         "`aws ec2 describe-regions` lists them")


def find_image(ec2: Any, s: Ec2Settings) -> dict[str, Any]:
    """The AMI by id, or the newest available one whose name matches, from trusted owners."""
    if s.image:
        images = _lookup(s.region, ec2.describe_images, "Images", ("InvalidAMIID",), ImageIds=[s.image])
        if not images:
            raise UsageError(f"AMI {s.image} not found in region {s.region}",
                             "AMIs are per region; check --image, or use --image-name")
        if images[0].get("State", "available") != "available":
            raise UsageError(f"AMI {s.image} is {images[0].get('State')}, not available")
        return images[0]
    name = s.image_name or DEFAULT_IMAGE_NAME
    images = _lookup(s.region, ec2.describe_images, "Images", (), Owners=s.image_owners,
                     Filters=[{"Name": "name", "Values": [name]}, {"Name": "state", "Values": ["available"]}])
    if not images:
        raise UsageError(f"no AMI named '{name}' from owners {','.join(s.image_owners)} in {s.region}",
                         "give --image ami-..., or --image-name/--image-owner")
    return max(images, key=lambda i: str(i.get("CreationDate", "")))


def check_instance_type(ec2: Any, s: Ec2Settings, image: dict[str, Any]) -> dict[str, Any]:
    """The type exists in the region and runs the image's architecture (one call); returns its
    description."""
    types = _lookup(s.region, ec2.describe_instance_types, "InstanceTypes", ("InvalidInstanceType",),
                    InstanceTypes=[s.instance_type])
    if not types:
        raise UsageError(f"instance type '{s.instance_type}' does not exist in region {s.region}",
                         "`aws ec2 describe-instance-types` lists them")
    arch = image.get("Architecture")
    supported = types[0].get("ProcessorInfo", {}).get("SupportedArchitectures", [])
    if arch and supported and arch not in supported:
        raise UsageError(f"instance type {s.instance_type} runs {'/'.join(supported)}, the AMI is {arch}",
                         "pick a matching --instance-type or --image")
    return dict(types[0])


# Device names for instance-store volumes of older (non-NVMe) types: the root is xvda, these follow.
_EPHEMERAL_DEVICES = "bcdefghijklmnopqrstuvwxy"


def instance_store_mappings(instance_type: dict[str, Any]) -> list[dict[str, str]]:
    """The block device mappings that attach an instance type's instance-store volumes (the scratch
    role stripes them). NVMe instance store (current types) is attached whatever the mappings say, so
    it needs none; older types (m3, c3, r3, i2, d2...) attach only the volumes a mapping names."""
    info = instance_type.get("InstanceStorageInfo") or {}
    if not info or info.get("NvmeSupport") == "required":
        return []
    count = sum(int(d.get("Count", 0)) for d in info.get("Disks", []))
    return [{"DeviceName": f"/dev/xvd{_EPHEMERAL_DEVICES[i]}", "VirtualName": f"ephemeral{i}"}
            for i in range(min(count, len(_EPHEMERAL_DEVICES)))]


def _lookup(region: str, call: Any, key: str, missing: tuple[str, ...],
            **kwargs: Any) -> list[dict[str, Any]]:
    """``call(**kwargs)[key]``; an error code starting with one of ``missing`` means "none found"."""
    from botocore.exceptions import ClientError

    with aws_errors(region):
        try:
            return list(call(**kwargs)[key])
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if missing and code.startswith(missing):
                return []
            raise


def preflight(ec2: Any, s: Ec2Settings) -> Plan:
    """Check region, credentials, AMI, instance type, key pair, group and network with read-only calls.

    Raises before anything is created. About three calls for a default set-up.
    """
    check_region(ec2, s.region)
    image = find_image(ec2, s)  # the first real call: it also proves the credentials
    instance_type = check_instance_type(ec2, s, image)
    if s.key_name and not _lookup(s.region, ec2.describe_key_pairs, "KeyPairs", ("InvalidKeyPair",),
                                  KeyNames=[s.key_name]):
        raise UsageError(f"key pair '{s.key_name}' not found in region {s.region}")
    vpc_id, subnet_id = _network(ec2, s)
    if s.security_group:
        groups = _lookup(s.region, ec2.describe_security_groups, "SecurityGroups", ("InvalidGroup",),
                         GroupIds=[s.security_group])
        if not groups:
            raise UsageError(f"security group {s.security_group} not found in region {s.region}")
        if vpc_id and groups[0].get("VpcId") != vpc_id:
            raise UsageError(f"security group {s.security_group} is in {groups[0].get('VpcId')}, "
                             f"not in the cluster's VPC {vpc_id}")
    cidrs = list(s.ssh_cidrs)
    if not cidrs and not s.security_group:
        cidrs = _vpc_cidrs(ec2, vpc_id, s.region) if s.ssh_via == "private" else [caller_address()]
    return Plan(image_id=str(image["ImageId"]), image_name=str(image.get("Name", "")),
                root_device=image.get("RootDeviceName"), vpc_id=vpc_id, subnet_id=subnet_id,
                ssh_cidrs=cidrs, instance_store=instance_store_mappings(instance_type))


def role_plan(ec2: Any, s: Ec2Settings, plan: Plan) -> Plan:
    """``plan`` for the nodes of one role (``s``: Ec2Settings.for_role): its own image and type checked,
    the network and key checks of the cluster's plan kept (two calls)."""
    image = find_image(ec2, s)
    check_instance_type(ec2, s, image)
    return replace(plan, image_id=str(image["ImageId"]), image_name=str(image.get("Name", "")),
                   root_device=image.get("RootDeviceName"))


def _network(ec2: Any, s: Ec2Settings) -> tuple[str | None, str | None]:
    """(vpc, subnet) for the cluster; (None, None) means the default VPC and its default subnets."""
    if s.subnet:
        subnets = _lookup(s.region, ec2.describe_subnets, "Subnets", ("InvalidSubnet",), SubnetIds=[s.subnet])
        if not subnets:
            raise UsageError(f"subnet {s.subnet} not found in region {s.region}")
        subnet = subnets[0]
        if s.vpc and subnet.get("VpcId") != s.vpc:
            raise UsageError(f"subnet {s.subnet} is in {subnet.get('VpcId')}, not in {s.vpc}")
        return str(subnet["VpcId"]), s.subnet
    if s.vpc:
        subnets = _lookup(s.region, ec2.describe_subnets, "Subnets", (),
                          Filters=[{"Name": "vpc-id", "Values": [s.vpc]}])
        if not subnets:
            raise UsageError(f"VPC {s.vpc} not found or without subnets in region {s.region}",
                             "give --subnet, or another --vpc")
        best = max(subnets, key=lambda x: (bool(x.get("DefaultForAz")),
                                           int(x.get("AvailableIpAddressCount", 0))))
        return s.vpc, str(best["SubnetId"])
    return None, None


def _vpc_cidrs(ec2: Any, vpc_id: str | None, region: str) -> list[str]:
    filters = ([{"Name": "vpc-id", "Values": [vpc_id]}] if vpc_id
               else [{"Name": "is-default", "Values": ["true"]}])
    vpcs = _lookup(region, ec2.describe_vpcs, "Vpcs", (), Filters=filters)
    if not vpcs:
        raise UsageError("the region has no default VPC", "give --subnet or --vpc")
    blocks = [str(a["CidrBlock"]) for a in vpcs[0].get("CidrBlockAssociationSet", [])]
    return blocks or [str(vpcs[0]["CidrBlock"])]


def caller_address(url: str = _CALLER_ADDRESS_URL, timeout: float = 5.0) -> str:
    """This machine's public IPv4 address as the internet sees it, as a /32."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # a fixed https URL
            text = resp.read(64).decode().strip()
        return str(ipaddress.ip_network(f"{ipaddress.ip_address(text)}/32"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot find this machine's public address ({exc})",
                         "give the address range allowed to SSH with --ssh-cidr") from None
