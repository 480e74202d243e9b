"""``vca guard``: change a running cluster's guard in one command: the stored settings, the cloud side
(EC2: the `vca:expires-at` tags, and each instance's shutdown behaviour so that a node's own power off
stops or terminates it as --idle-action says) and every live node's /etc/vca/guard.conf."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..node import Node
from ..remote.ssh import run_all
from ..state import ClusterState
from .node import install_lines, script
from .settings import GuardSettings, check_action, conf_text, parse_duration, parse_lifetime, upload_urls

Say = Callable[[str], None]


@dataclass
class GuardChange:
    """What the user asked to change (None: leave as it is), checked before anything changes."""

    idle_stop: int | None = None
    idle_action: str | None = None
    lifetime: int | None = None  # seconds from now; 0: never expires
    interval: int | None = None
    imds: str | None = None
    spot_watch: str | None = None

    @classmethod
    def parse(cls, idle_stop: str | None = None, idle_action: str | None = None, lifetime: str | None = None,
              interval: int | None = None, imds: str | None = None, spot_watch: str | None = None) -> GuardChange:
        if spot_watch is not None and spot_watch not in ("auto", "on", "off"):
            raise UsageError(f"invalid spot watch '{spot_watch}'", "use auto, on or off")
        if imds and not imds.startswith(("http://", "https://")):
            raise UsageError(f"invalid metadata endpoint '{imds}'", "give a URL such as http://169.254.169.254")
        return cls(idle_stop=None if idle_stop is None else parse_duration(idle_stop, "idle stop"),
                   idle_action=None if idle_action is None else check_action(idle_action),
                   lifetime=None if lifetime is None else parse_lifetime(lifetime),
                   interval=interval, imds=imds, spot_watch=spot_watch)

    def applied_to(self, s: GuardSettings, now: float) -> GuardSettings:
        out = GuardSettings(**s.to_record())
        if self.idle_stop is not None:
            out.idle_stop = self.idle_stop
        if self.idle_action is not None:
            out.idle_action = self.idle_action
        if self.lifetime is not None:
            out.expires_at = float(int(now) + self.lifetime) if self.lifetime else 0.0
        if self.interval is not None:
            out.interval = max(1, self.interval)
        if self.imds is not None:
            out.imds = self.imds.rstrip("/")
        if self.spot_watch is not None:
            out.spot_watch = self.spot_watch
        return out


@dataclass
class GuardResult:
    settings: GuardSettings
    nodes: dict[str, str] = field(default_factory=dict)  # node -> what its guard said (started, same)
    failed: dict[str, str] = field(default_factory=dict)  # node -> why
    tagged: int = 0  # EC2 instances whose tags or shutdown behaviour changed


def push_lines(state: ClusterState, nodes: Sequence[Node]) -> str:
    """For the membership push: the guard with the cluster's settings on every node it reaches."""
    record = state.load()
    settings = GuardSettings.of(record.provider, getattr(record, "guard", None))
    return install_lines(conf_text(settings, state.name, nodes), _urls(state, nodes))


def _urls(state: ClusterState, nodes: Sequence[Node]) -> str:
    """Upload URLs for the spot checkpoint when the cluster has a bucket (vca_data_bucket)."""
    from ..release.contract import cluster_vars

    bucket = str(cluster_vars(state.dir, "-").get("vca_data_bucket") or "")
    return upload_urls(bucket, state.name, nodes) if bucket else ""


def push(state: ClusterState, settings: GuardSettings, nodes: Sequence[Node]) -> tuple[dict[str, str], dict[str, str]]:
    """The settings to every node in ``nodes`` (running ones), at once; (said, failed) by node."""
    live = [n for n in nodes if n.state == "running"]
    said: dict[str, str] = {}
    failed: dict[str, str] = {}
    for r in run_all(state, live, script(conf_text(settings, state.name, nodes), _urls(state, nodes)), timeout=60):
        lines = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        if r.rc != 0 or "guard_error" in lines or "error" in lines:
            failed[r.node.name] = (lines.get("guard_error") or lines.get("error") or r.stderr.strip()[-200:]
                                   or f"exit {r.rc}")
        else:
            said[r.node.name] = lines.get("guard", "?")
    return said, failed


def ec2_apply(region: str, nodes: Sequence[Node], settings: GuardSettings, lifetime_changed: bool) -> int:
    """Tags and shutdown behaviour of the cluster's instances; returns how many were changed."""
    from ..providers.ec2 import api as ec2_api
    from ..providers.ec2.provider import EXPIRY_FORMAT

    ec2: Any = ec2_api.client(region)
    ids = [n.instance_id for n in nodes if n.instance_id]
    # a spot instance always terminates when it shuts down: its behaviour cannot be set
    on_demand = [n.instance_id for n in nodes if n.instance_id and n.details.get("lifecycle") != "spot"]
    if not ids:
        return 0
    with ec2_api.aws_errors(region):
        if lifetime_changed:
            value = ("never" if not settings.expires_at
                     else time.strftime(EXPIRY_FORMAT, time.gmtime(settings.expires_at)))
            for start in range(0, len(ids), 1000):
                ec2.create_tags(Resources=ids[start:start + 1000], Tags=[{"Key": ec2_api.TAG_EXPIRES, "Value": value}])
        behaviour = settings.shutdown_behavior
        for iid in on_demand:  # one instance per call (the API takes one)
            ec2.modify_instance_attribute(InstanceId=iid, InstanceInitiatedShutdownBehavior={"Value": behaviour})
    return len(ids)
