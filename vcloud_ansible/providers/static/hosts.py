"""Static hosts as the user names them: ``host``, ``user@host:port`` or a JSON object with per-host
settings, each checked and resolved against the cluster-wide defaults (user, port, identity file).

    vca create lab --static 10.0.0.5 --static ops@10.0.0.6:2222 \
        --static '{"host": "10.0.0.7", "capabilities": ["redis", "gpu"], "role": "head"}'

Only the text is checked here (no host is contacted): a malformed name, port or JSON object, an
unknown key, a duplicate host (same address and port) are refused in one line before anything is made.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ...errors import UsageError
from ...node import ROLES
from ..settings import shown

KEYS = ("host", "user", "port", "identity", "work", "scratch", "capabilities", "role")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
CAPABILITY = re.compile(r"^[A-Za-z0-9_]{1,63}$")  # an inventory group cap_<name>
_FORMS = "host, user@host, host:port, user@host:port, [v6addr]:port or a JSON object {\"host\": ...}"


@dataclass(frozen=True)
class HostSpec:
    """One static host, resolved: every field set (defaults filled in) except the optional ones."""

    host: str
    user: str = "root"
    port: int = 22
    identity: str | None = None  # the key vca first logs in with (then the cluster's own key)
    work: str | None = None  # where ~/vca lives on the host (a link to WORK/vca)
    scratch: str | None = None  # VCA_SCRATCH for jobs on the host (/etc/vca/scratch)
    capabilities: tuple[str, ...] = ()
    role: str | None = None  # head, worker or dev; None: by index

    @property
    def key(self) -> tuple[str, int]:
        """What makes two hosts the same machine: the address and SSH port."""
        return self.host.lower(), self.port

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}" + ("" if self.port == 22 else f":{self.port}")

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v not in (None, ())}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostSpec:
        return cls(**{**data, "capabilities": tuple(data.get("capabilities", ()))})


def parse_host(value: Any, defaults: Mapping[str, Any] | None = None) -> HostSpec:
    """A host as text (``user@host:port``, or a JSON object) or as a mapping (a spec file)."""
    defaults = defaults or {}
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UsageError(f"static host '{shown(value)}' is not valid JSON: {exc.msg} at column {exc.colno}",
                             f"give {_FORMS}") from None
    if isinstance(value, Mapping):
        return _from_mapping(value, defaults)
    if not isinstance(value, str):
        raise UsageError(f"static host must be text or a mapping, got '{shown(value)}'", f"give {_FORMS}")
    return _from_text(value.strip(), defaults)


def _from_text(text: str, defaults: Mapping[str, Any]) -> HostSpec:
    user, at, rest = text.rpartition("@")
    if not at:
        user, rest = "", text
    port: str | None = None
    if rest.startswith("["):  # [v6]:port
        addr, close, tail = rest[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise UsageError(f"malformed static host '{shown(text)}'", f"give {_FORMS}")
        host, port = addr, tail[1:] if tail else None
    elif rest.count(":") == 1:
        host, _, port = rest.partition(":")
    else:
        host = rest
    fields: dict[str, Any] = {"host": host}
    if at:
        fields["user"] = user
    if port is not None:
        fields["port"] = port
    return _resolve(fields, defaults, text)


def _from_mapping(data: Mapping[str, Any], defaults: Mapping[str, Any]) -> HostSpec:
    text = shown(json.dumps(dict(data), default=str))
    unknown = sorted(shown(k) for k in data if k not in KEYS)
    if unknown:
        raise UsageError(f"static host {text}: unknown key {', '.join(unknown)}", f"known: {', '.join(KEYS)}")
    if "host" not in data:
        raise UsageError(f"static host {text} has no \"host\"", "e.g. {\"host\": \"10.0.0.5\", \"user\": \"ops\"}")
    return _resolve({k: v for k, v in data.items() if v is not None}, defaults, text)


def _resolve(fields: dict[str, Any], defaults: Mapping[str, Any], text: str) -> HostSpec:
    host = fields["host"]
    if not isinstance(host, str) or not _valid_host(host):
        raise UsageError(f"malformed static host '{shown(text)}': '{shown(host)}' is not a host name or address",
                         f"give {_FORMS}")
    user = fields.get("user", defaults.get("user") or "root")
    if not isinstance(user, str) or not _USER.match(user):
        raise UsageError(f"static host '{shown(text)}': invalid user name '{shown(user)}'",
                         "a login name: a-z, 0-9, _ . - (starting with a letter or _)")
    port = fields.get("port", defaults.get("port") or 22)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise UsageError(f"static host '{shown(text)}': invalid port '{shown(port)}'", "a number 1-65535")
    paths = {}
    for key in ("identity", "work", "scratch"):
        value = fields.get(key, defaults.get(key) if key == "identity" else None)
        if value is not None and (not isinstance(value, str) or not value.strip() or "\n" in value):
            raise UsageError(f"static host '{shown(text)}': {key} must be a path, got '{shown(value)}'")
        if value is not None and key != "identity" and not value.startswith("/"):
            raise UsageError(f"static host '{shown(text)}': {key} must be an absolute path, got '{shown(value)}'")
        paths[key] = value
    caps = fields.get("capabilities", ())
    if isinstance(caps, str):
        caps = [c.strip() for c in caps.split(",") if c.strip()]
    if not isinstance(caps, list | tuple) or not all(isinstance(c, str) and CAPABILITY.match(c) for c in caps):
        raise UsageError(f"static host '{shown(text)}': capabilities must be a list of names (letters, digits, _), "
                         f"got '{shown(caps)}'")
    role = fields.get("role")
    if role is not None and role not in ROLES:
        raise UsageError(f"static host '{shown(text)}': unknown node role '{shown(role)}'",
                         f"roles: {', '.join(ROLES)}")
    return HostSpec(host=host, user=user, port=port, capabilities=tuple(dict.fromkeys(caps)), role=role, **paths)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host)) and not host.replace(".", "").isdigit()


def parse_hosts(values: Iterable[Any], defaults: Mapping[str, Any] | None = None) -> list[HostSpec]:
    """Every host, in order; refuses a host given twice (same address and port) and a second head."""
    out: list[HostSpec] = []
    seen: dict[tuple[str, int], str] = {}
    for value in values:
        spec = parse_host(value, defaults)
        if spec.key in seen:
            raise UsageError(f"duplicate static host {spec.host}:{spec.port} (given as '{seen[spec.key]}' "
                             f"and '{shown(value)}')", "name each host once")
        seen[spec.key] = shown(value)
        out.append(spec)
    heads = [s.label for s in out if s.role == "head"]
    if len(heads) > 1:
        raise UsageError(f"static hosts name {len(heads)} heads ({', '.join(heads)}); a cluster has at most one",
                         "give the others role worker or dev")
    return out
