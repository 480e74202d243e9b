"""The guard's settings: what the cluster keeps (ClusterRecord.guard), the defaults per provider, the
durations users type, and the file each node reads (/etc/vca/guard.conf, see roles/package/files/vca-guard).

Defaults, for a careful user: on EC2 a node that has been idle for 60 minutes stops (its disk kept, no
compute charge) and every node has the lifetime of its `vca:expires-at` tag (the provider's --lifetime,
24 h unless set); at expiry the node runs vca-checkpoint and powers off even if a job runs. On the local
lab nothing costs money: no idle stop, no lifetime, unless set with `vca guard`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UsageError
from ..node import Node

ACTIONS = ("stop", "terminate")
MAX_SECONDS = 365 * 86400
DEFAULT_INTERVAL = 30  # seconds between the guard's looks on a node
DEFAULT_SSH_GRACE = 60  # an SSH command running longer than this counts as activity
DEFAULT_CHECKPOINT_TIMEOUT = 120  # seconds vca-checkpoint may take at expiry
SPOT_INTERVAL = 5  # seconds between looks at the spot interruption notice (AWS's advice)
IDLE_DEFAULTS = {"ec2": 3600}  # provider -> idle stop in seconds; others: off

_DURATION_RE = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, what: str = "duration") -> int:
    """'30m' -> 1800, '20s' -> 20, '2h' -> 7200, '0' or 'off' -> 0. Refused in one line otherwise."""
    t = str(text).strip().lower()
    if t in ("off", "never", "none"):
        return 0
    if t.startswith("-"):
        raise UsageError(f"negative {what} '{text}'", "give a duration such as 30m, 4h or 2d, or 0 for none")
    m = _DURATION_RE.match(t)
    if not m:
        raise UsageError(f"invalid {what} '{text}'",
                         "give a number with s, m, h or d (e.g. 20s, 30m, 4h, 2d), or 0 for none")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_SECONDS:
        raise UsageError(f"{what} '{text}' is longer than a year", "give a shorter one, or 0 for none")
    return seconds


def parse_lifetime(text: str) -> int:
    """'+4h' or '4h' -> 14400 seconds from now; '0' -> 0 (never expires)."""
    t = str(text).strip()
    return parse_duration(t[1:] if t.startswith("+") else t, "lifetime")


def check_action(action: str) -> str:
    if action not in ACTIONS:
        raise UsageError(f"invalid idle action '{action}'", f"use one of: {', '.join(ACTIONS)}")
    return action


@dataclass
class GuardSettings:
    """What the cluster keeps (ClusterRecord.guard). ``expires_at`` is epoch seconds for the whole
    cluster (0: never; None: each node's own, from the provider's expiry tag); ``interval`` the seconds
    between a node's looks."""

    idle_stop: int = 0
    idle_action: str = "stop"
    expires_at: float | None = None
    interval: int = DEFAULT_INTERVAL
    ssh_grace: int = DEFAULT_SSH_GRACE
    checkpoint_timeout: int = DEFAULT_CHECKPOINT_TIMEOUT
    imds: str = ""  # the instance metadata service the spot watch asks ("": EC2's own, 169.254.169.254)
    spot_watch: str = "auto"  # auto: on spot instances only; on: every node; off: none

    @classmethod
    def of(cls, provider: str, stored: Mapping[str, Any] | None) -> GuardSettings:
        """The cluster's settings: what ``vca guard`` stored, else the provider's defaults."""
        # ec2: each node expires at its vca:expires-at tag; elsewhere nothing expires unless set
        base = cls(idle_stop=IDLE_DEFAULTS.get(provider, 0), expires_at=None if provider == "ec2" else 0.0)
        if not stored:
            return base
        known = {k: v for k, v in stored.items() if k in asdict(base)}
        return cls(**{**asdict(base), **known})

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def shutdown_behavior(self) -> str:
        """What an EC2 instance's own poweroff does to it, to match the idle action: stop or terminate."""
        return "terminate" if self.idle_action == "terminate" else "stop"


def upload_urls(bucket: str, cluster: str, nodes: Sequence[Node], lifetime: int = 7 * 86400) -> str:
    """Per node (by private IP) a presigned PUT URL for s3://bucket/<cluster>/checkpoints/<node>.tar.gz,
    where the guard uploads what vca-checkpoint named on a spot notice (valid 7 days, the most S3
    allows; each push renews them)."""
    from ..remote.s3 import client

    s3 = client()
    return "".join(
        f"upload_url@{n.private_ip}="
        + s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": checkpoint_key(cluster, n.name)},
                                    ExpiresIn=lifetime) + "\n"
        for n in nodes)


def checkpoint_key(cluster: str, node: str) -> str:
    return f"{cluster}/checkpoints/{node}.tar.gz"


def node_expiry(settings: GuardSettings, node: Node) -> float:
    """Epoch seconds at which ``node`` expires, 0 for never."""
    if settings.expires_at is not None:
        return settings.expires_at
    return node.expires_at or 0


def conf_text(settings: GuardSettings, cluster: str, nodes: Sequence[Node], *,
              extra: Mapping[str, str] | None = None) -> str:
    """/etc/vca/guard.conf: the cluster's settings, and per node (by private IP) its expiry and whether
    it is a spot instance (the guard then watches the spot interruption notice)."""
    lines = [f"# vca guard settings for cluster {cluster} (written by vca: `vca guard` changes them)",
             f"cluster={cluster}", f"idle_stop={settings.idle_stop}", f"idle_action={settings.idle_action}",
             f"interval={settings.interval}", f"ssh_grace={settings.ssh_grace}",
             f"checkpoint_timeout={settings.checkpoint_timeout}", f"spot_interval={SPOT_INTERVAL}"]
    if settings.expires_at is not None:
        lines.append(f"expires_at={int(settings.expires_at)}")
    for n in nodes:
        if settings.expires_at is None:
            lines.append(f"expires_at@{n.private_ip}={int(node_expiry(settings, n))}")
        if settings.spot_watch == "auto" and n.details.get("lifecycle") == "spot":
            lines.append(f"spot@{n.private_ip}=1")
    if settings.spot_watch == "on":
        lines.append("spot=1")
    if settings.imds:
        lines.append(f"imds={settings.imds}")
    watch = (settings.idle_stop > 0 or bool(settings.expires_at) or settings.spot_watch == "on"
             or any(line.startswith("spot@") or (line.startswith("expires_at@") and not line.endswith("=0"))
                    for line in lines))
    lines.append(f"active={int(watch)}")  # 0: nothing to watch, the node needs no guard service
    lines += [f"{k}={v}" for k, v in (extra or {}).items()]
    return "\n".join(lines) + "\n"


def describe(settings: GuardSettings, now: float | None = None) -> str:
    """One line: 'idle stop after 30m (stop), lifetime ends in 3h59m'."""
    now = time.time() if now is None else now
    idle = (f"idle stop after {format_seconds(settings.idle_stop)} ({settings.idle_action})"
            if settings.idle_stop else "no idle stop")
    if settings.expires_at is None:
        life = "each node's own lifetime"
    elif settings.expires_at == 0:
        life = "no lifetime"
    else:
        life = f"lifetime ends in {format_seconds(max(0, settings.expires_at - now))}"
    return f"{idle}, {life}"


def format_seconds(s: float) -> str:
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60}s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600}h" + (f"{s % 3600 // 60}m" if s % 3600 // 60 else "")
    return f"{s // 86400}d" + (f"{s % 86400 // 3600}h" if s % 86400 // 3600 else "")
