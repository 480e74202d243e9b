"""Provider settings as declarations: a provider lists each of its settings once (name, kind, help,
default, environment variable, choices, metavar) and the rest is derived from that list: the
`vca provision` flags (cli/lifecycle.py), the provider's section of the spec file and its JSON Schema
(spec.py), the defaults.

Values arrive as text from flags and environment variables (click has read them), as typed YAML from
a spec file, or as Python values from the API; ``Setting.coerce`` turns any of them into the declared
kind or says in one line why it cannot. Whether a value makes sense (a region's shape, an AMI that
exists) is the provider's own check, not this module's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

KINDS = ("str", "int", "bool", "list", "map", "choice")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_INT_PATTERN = r"^\s*[-+]?[0-9]+\s*$"


@dataclass(frozen=True)
class Setting:
    """One setting of one provider: its key in the stored settings and the spec file's section, its
    flag, its environment variable, and how to read a value of it."""

    provider: str
    key: str
    help: str  # without the default: help_text adds it
    kind: str = "str"  # one of KINDS; list and map flags are repeatable
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    default: str | int | bool | None = None  # list and map settings start empty
    env: str | None = None  # default: VCA_<PROVIDER>_<KEY>
    stored: bool = True  # False: applies to one `vca provision` run only (e.g. the role of new nodes)

    def __post_init__(self) -> None:
        if self.kind not in KINDS or not _KEY_RE.match(self.key) or bool(self.choices) != (self.kind == "choice"):
            raise ValueError(f"bad declaration of setting {self.provider}.{self.key}")

    @property
    def flag(self) -> str:
        name = self.key.replace("_", "-")
        # repeatable flags are singular: --tag K=V --tag K2=V2, --ssh-cidr A --ssh-cidr B
        return "--" + (name.removesuffix("s") if self.kind in ("list", "map") else name)

    @property
    def envvar(self) -> str:
        return self.env or f"VCA_{self.provider.upper()}_{self.key.upper()}"

    @property
    def help_text(self) -> str:
        if self.default is None or self.kind == "bool":
            return self.help
        return f"{self.help} Default: {self.default}."

    def initial(self) -> Any:
        """The value before any source gave one (a fresh list or dict for repeatable settings)."""
        if self.kind == "list":
            return []
        if self.kind == "map":
            return {}
        return self.default

    def coerce(self, value: Any, name: str | None = None) -> Any:
        """``value`` as this setting's kind: int, bool, list of str, dict of str, or str. ``name`` is how
        the error calls the setting (default: its flag)."""
        name = name or self.flag
        if self.kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and re.match(_INT_PATTERN, value):
                return int(value)
            raise UsageError(f"{name} must be a whole number, got '{shown(value)}'")
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
                return value.strip().lower() in TRUE
            raise UsageError(f"{name} must be true or false, got '{shown(value)}'")
        if self.kind == "list":
            items = value.split() if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not all(_scalar(v) for v in items):
                raise UsageError(f"{name} must be a list of values, got '{shown(value)}'")
            return [str(v).strip() for v in items if str(v).strip()]
        if self.kind == "map":
            if isinstance(value, dict):
                if not all(_scalar(k) and (_scalar(v) or isinstance(v, bool)) for k, v in value.items()):
                    raise UsageError(f"{name} must map names to single values, got '{shown(value)}'")
                return {str(k): str(v) for k, v in value.items()}
            pairs = value.split() if isinstance(value, str) else value
            if not isinstance(pairs, list | tuple) or not all(isinstance(p, str) for p in pairs):
                raise UsageError(f"{name} must be KEY=VALUE pairs or a mapping, got '{shown(value)}'")
            return dict(parse_pair(p, self.flag[2:].replace("-", " ")) for p in pairs)
        if isinstance(value, os.PathLike):  # a file setting given as a Path through the API
            value = os.fspath(value)
        if not _scalar(value):
            raise UsageError(f"{name} must be a single value, got '{shown(value)}'")
        text = str(value).strip()
        if self.kind == "choice" and text not in self.choices:
            raise UsageError(f"{name} must be one of {', '.join(self.choices)}, got '{shown(text)}'")
        return text

    def json_schema(self) -> dict[str, Any]:
        """What ``coerce`` accepts from a spec file, as JSON Schema (null: not given)."""
        scalar = {"type": ["string", "number"]}
        kinds: dict[str, list[dict[str, Any]]] = {
            "str": [scalar],
            "int": [{"type": "integer"}, {"type": "string", "pattern": _INT_PATTERN}],
            "bool": [{"type": "boolean"}, {"enum": [0, 1, *TRUE, *FALSE]}],
            "list": [{"type": "string"}, {"type": "array", "items": scalar}],
            "map": [{"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                    {"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "choice": [{"enum": list(self.choices)}],
        }
        out: dict[str, Any] = {"description": self.help_text, "anyOf": [*kinds[self.kind], {"type": "null"}]}
        if self.default is not None:
            out["default"] = self.default
        return out


def shown(value: Any, limit: int = 60) -> str:
    """A value as an error line can show it: on one line, cut when long."""
    text = value if isinstance(value, str) else repr(value)
    text = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)
    return text if len(text) <= limit else text[:limit] + "..."


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def parse_pair(text: str, what: str = "pair") -> tuple[str, str]:
    """'team=x' -> ('team', 'x'): one item of a map setting given as text (flags, environment)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"invalid {what} '{shown(text)}'", "use KEY=VALUE")
    return key, value


def check_known(provider: str, declared: Sequence[Setting], given: Iterable[str]) -> None:
    """Refuse settings that ``provider`` does not declare, naming those it does."""
    unknown = sorted(set(given) - {s.key for s in declared})
    if unknown:
        raise UsageError(f"unknown {provider} setting {', '.join(unknown)}",
                         f"known: {', '.join(s.key for s in declared)}")


def by_flag(settings: Iterable[Setting]) -> dict[str, tuple[Setting, ...]]:
    """The settings of every provider grouped by flag: providers may share a flag (``--user``) when
    they declare it alike (same key, kind and choices); its value goes to the cluster's provider."""
    out: dict[str, tuple[Setting, ...]] = {}
    for s in settings:
        same = out.get(s.flag, ())
        if same and (same[0].key, same[0].kind, same[0].choices) != (s.key, s.kind, s.choices):
            raise ValueError(f"providers {same[0].provider} and {s.provider} declare {s.flag} differently")
        out[s.flag] = (*same, s)
    return out
