"""The cluster spec file: a cluster's desired state in YAML (`vca provision --spec`), and its JSON
Schema (`vca spec-schema`).

    provider: ec2                       # a registered provider
    nodes: 4                            # or by node role: {head: 1, worker: 3}
    ec2:                                # the settings that provider declares, typed like its flags
      region: eu-west-1
      tags: {team: x}
    setup:                              # roles the setup stage applies, per node role
      all: [common]
      head: [nfs_server]

The keys of a provider's section are the settings it declares (providers.settings), so a provider
added to the registry has its section here with no edit. Only values' types are checked here; whether
they make sense is the provider's check, as for flags. The file must be a short UTF-8 regular file:
a FIFO, a device or a disk image is refused before it is read, in one line.
"""

from __future__ import annotations

import contextvars
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError
from .node import ROLES
from .providers import REGISTRY, provider_class
from .providers.settings import Setting, shown

SPEC_MAX_BYTES = 1 << 20  # a cluster spec is a few lines; /dev/zero or a disk image is not one
SETUP_GROUPS = ("all", *ROLES)  # setup roles apply to every node, or to the nodes of one node role
_ROLE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"  # an Ansible role: a name, or namespace.collection.name
_ROLE_NAME_RE = re.compile(_ROLE_NAME)


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the spec: a command kept running on a node (``any``, a node's index or name) that
    moves to another node when its node fails (``failover``)."""

    name: str
    command: tuple[str, ...]
    node: str = "any"
    failover: bool = True


@dataclass(frozen=True)
class ClusterSpecFile:
    """A spec file, checked and typed. Keys it does not give are None or empty."""

    provider: str | None = None
    nodes: int | None = None  # in all; the sum when given by node role
    nodes_by_role: dict[str, int] | None = None  # when given by node role: role -> count
    section: str | None = None  # the provider whose section ``settings`` come from
    settings: dict[str, Any] = field(default_factory=dict)  # that section, each value typed
    setup: dict[str, tuple[str, ...]] = field(default_factory=dict)  # all | head | worker | dev -> roles
    path: Path | None = None
    package: Path | None = None  # the code every node runs (`vca up` injects it when it changed)
    package_env: dict[str, str] = field(default_factory=dict)  # the job's own variables
    services: tuple[ServiceSpec, ...] = ()  # long-running commands kept up on the cluster (`vca up`)

    def total_to_provision(self) -> int | None:
        """The node count `vca provision --spec` converges on. Node counts by role are provisioned only
        when they are what vca gives anyway (node 0 head, the others workers)."""
        by_role = self.nodes_by_role
        if by_role is None or (by_role.get("head") == 1 and not by_role.get("dev")):
            return self.nodes
        given = ", ".join(f"{role}: {n}" for role, n in by_role.items())
        raise UsageError(f"{self._where()}nodes by role ({given}) cannot be provisioned from a spec file yet",
                         "vca makes node 0 head and the others workers: give `nodes: N` or "
                         "{head: 1, worker: N}, and other roles with `vca provision N --role ROLE`")

    def _where(self) -> str:
        return f"spec file {self.path}: " if self.path else "spec: "


def read_spec(path: Path) -> ClusterSpecFile:
    """Read and check a spec file; every problem is one UsageError line naming the file."""
    text = _read_text(path)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"spec file {path} is not valid YAML{line}: {str(exc).splitlines()[0]}") from None
    token = _LINES.set(key_lines(text))
    try:
        return parse_spec(doc, path)
    finally:
        _LINES.reset(token)


def parse_spec(doc: Any, path: Path | None = None) -> ClusterSpecFile:
    """Check a spec already loaded from YAML (None: an empty file)."""
    where = f"spec file {path}" if path else "spec"
    known = ("provider", "nodes", "setup", "package", "services", *REGISTRY)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UsageError(f"{where} must be a mapping", f"keys: {', '.join(known)}")
    unknown = sorted(shown(k) for k in doc if k not in known)
    if unknown:
        raise UsageError(f"{_at(where, unknown[0])}: unknown key {', '.join(unknown)}", f"known: {', '.join(known)}")
    doc = {k: v for k, v in doc.items() if v is not None or k in REGISTRY}  # null: not given

    provider = doc.get("provider")
    if provider is not None and (not isinstance(provider, str) or provider not in REGISTRY):
        raise UsageError(f"{where}: unknown provider '{shown(provider)}'", f"choose one of: {', '.join(REGISTRY)}")
    sections = [name for name in REGISTRY if name in doc]
    for name in sections:
        if provider is not None and name != provider:
            raise UsageError(f"{where}: section '{name}' is for provider {name}, but the provider is {provider}",
                             f"remove the section, or set provider: {name}")
    if len(sections) > 1:
        raise UsageError(f"{where}: sections for providers {' and '.join(sections)}",
                         "give one, for the provider the cluster uses")
    section = sections[0] if sections else None
    settings = _settings(where, section, doc[section]) if section else {}
    total, by_role = _nodes(where, doc.get("nodes"))
    package, env = _package(where, doc.get("package"), path)
    return ClusterSpecFile(provider=provider, nodes=total, nodes_by_role=by_role, section=section,
                           settings=settings, setup=_setup(where, doc.get("setup")), path=path,
                           package=package, package_env=env, services=_services(where, doc.get("services")))


_SERVICE_KEYS = ("name", "command", "node", "failover")
_SERVICE_NAME = r"^[a-z][a-z0-9_-]{0,39}$"


def _package(where: str, value: Any, path: Path | None) -> tuple[Path | None, dict[str, str]]:
    """``package: DIR`` or ``package: {path: DIR, env: {K: V}}``; a relative path is relative to the
    spec file's folder."""
    if value is None:
        return None, {}
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        raise UsageError(f"{_at(where, 'package')}: 'package' must be a path or {{path: DIR, env: {{K: V}}}}, "
                         f"got '{shown(value)}'")
    unknown = sorted(shown(k) for k in value if k not in ("path", "env"))
    if unknown:
        raise UsageError(f"{_at(where, 'package', unknown[0])}: unknown key package.{', package.'.join(unknown)}",
                         "known: path, env")
    text = value.get("path")
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"{_at(where, 'package', 'path')}: package.path must be a path, got '{shown(text)}'")
    env = value.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k)
                                            and isinstance(v, str | int | float) and not isinstance(v, bool)
                                            for k, v in env.items()):
        raise UsageError(f"{_at(where, 'package', 'env')}: package.env must map variable names to values, "
                         f"got '{shown(env)}'")
    folder = path.parent if path else Path.cwd()
    return (folder / Path(text).expanduser()), {k: str(v) for k, v in env.items()}


def _services(where: str, value: Any) -> tuple[ServiceSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise UsageError(f"{_at(where, 'services')}: 'services' must be a list of {{name, command, node, failover}}")
    out: list[ServiceSpec] = []
    for i, item in enumerate(value):
        at = f"services[{i}]"
        if not isinstance(item, dict):
            raise UsageError(f"{_at(where, 'services', i)}: {at} must be a mapping with name and command")
        unknown = sorted(shown(k) for k in item if k not in _SERVICE_KEYS)
        if unknown:
            raise UsageError(f"{_at(where, 'services', i, unknown[0])}: unknown key {at}.{unknown[0]}",
                             f"known: {', '.join(_SERVICE_KEYS)}")
        name, command = item.get("name"), item.get("command")
        if not isinstance(name, str) or not re.match(_SERVICE_NAME, name):
            raise UsageError(f"{_at(where, 'services', i, 'name')}: {at}.name must be a name (a-z, 0-9, _ -), "
                             f"got '{shown(name)}'")
        if isinstance(command, str):
            command = command.split()
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise UsageError(f"{_at(where, 'services', i, 'command')}: {at}.command must be a command line or a "
                             f"list of words, got '{shown(command)}'")
        node = item.get("node", "any")
        failover = item.get("failover", True)
        if isinstance(node, int) and not isinstance(node, bool) and node >= 0:
            node = str(node)  # `node: 1` as YAML reads it
        if not isinstance(node, str) or not node:
            raise UsageError(f"{_at(where, 'services', i, 'node')}: {at}.node must be any, a node's index or name")
        if not isinstance(failover, bool):
            raise UsageError(f"{_at(where, 'services', i, 'failover')}: {at}.failover must be true or false, "
                             f"got '{shown(failover)}'")
        if name in {s.name for s in out}:
            raise UsageError(f"{_at(where, 'services', i, 'name')}: service '{name}' is named twice")
        out.append(ServiceSpec(name, tuple(command), node, failover))
    return tuple(out)


# The line of each key in the spec file being read (read_spec), for errors: path of keys -> line.
_LINES: contextvars.ContextVar[dict[tuple[Any, ...], int] | None] = contextvars.ContextVar("spec_lines",
                                                                                         default=None)


def _at(where: str, *path: Any) -> str:
    """``where`` with the line of ``path`` (or of its nearest parent) in the file being read."""
    lines = _LINES.get() or {}
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return f"{where} line {lines[path[:n]]}"
    return where


def key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Each key path of a YAML document (``("ec2", "region")``, ``("services", 0, "name")``) -> its line."""
    out: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, child in node.value:
                if isinstance(key, yaml.ScalarNode):
                    out[(*path, key.value)] = key.start_mark.line + 1
                    walk(child, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, child in enumerate(node.value):
                out[(*path, i)] = child.start_mark.line + 1
                walk(child, (*path, i))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out
    if root is not None:
        walk(root, ())
    return out


def _nodes(where: str, value: Any) -> tuple[int | None, dict[str, int] | None]:
    shape = "a whole number >= 1, or node role -> count ({head: 1, worker: 3})"
    if value is None:
        return None, None
    if _whole(value):
        if value < 1:
            raise UsageError(f"{_at(where, 'nodes')}: 'nodes' must be a whole number >= 1, got {value}")
        return value, None
    if not isinstance(value, dict) or not value:
        raise UsageError(f"{_at(where, 'nodes')}: 'nodes' must be {shape}")
    by_role: dict[str, int] = {}
    for role, count in value.items():
        if role not in ROLES:
            raise UsageError(f"{_at(where, 'nodes', role)}: nodes: unknown node role '{shown(role)}'",
                             f"node roles: {', '.join(ROLES)}")
        if not _whole(count) or count < 0:
            raise UsageError(f"{_at(where, 'nodes', role)}: nodes.{role} must be a whole number >= 0, "
                             f"got '{shown(count)}'")
        by_role[role] = count
    if sum(by_role.values()) < 1:
        raise UsageError(f"{where}: 'nodes' adds up to 0", "give at least one node")
    return sum(by_role.values()), by_role


def _settings(where: str, provider: str, value: Any) -> dict[str, Any]:
    declared = {s.key: s for s in provider_class(provider).settings}
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: '{provider}' must be a mapping of settings",
                         f"known: {', '.join(declared)}" if declared else f"provider {provider} takes none")
    unknown = sorted(shown(k) for k in value if k not in declared)
    if unknown:
        raise UsageError(f"{_at(where, provider, unknown[0])}: unknown {provider} setting {', '.join(unknown)}",
                         f"known: {', '.join(declared)}" if declared else f"provider {provider} takes none")
    return {key: declared[key].coerce(v, f"{_at(where, provider, key)}: {provider}.{key}")
            for key, v in value.items() if v is not None}


def _setup(where: str, value: Any) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: 'setup' must map {', '.join(SETUP_GROUPS)} to lists of role names",
                         "e.g. setup: {all: [common], head: [nfs_server]}")
    out: dict[str, tuple[str, ...]] = {}
    for group, roles in value.items():
        if group not in SETUP_GROUPS:
            raise UsageError(f"{_at(where, 'setup', group)}: setup: unknown node role '{shown(group)}'",
                             f"known: {', '.join(SETUP_GROUPS)}")
        roles = [] if roles is None else roles
        if not isinstance(roles, list):
            raise UsageError(f"{_at(where, 'setup', group)}: setup.{group} must be a list of role names, "
                             f"got '{shown(roles)}'")
        for role in roles:
            if not isinstance(role, str) or not _ROLE_NAME_RE.match(role):
                raise UsageError(f"{where}: setup.{group}: invalid role name '{shown(role)}'",
                                 "a role's name (letters, digits, _ . -), or namespace.collection.role")
        out[group] = tuple(roles)
    return out


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file, from the registered providers' declarations. Two rules only the
    reader enforces: a node count by role adds up to at least 1; the file is a short text file."""
    sections = {name: _section_schema(name, provider_class(name).settings) for name in REGISTRY}
    names = list(REGISTRY)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "vca cluster spec",
        "description": "A cluster's desired state: `vca provision --spec FILE`.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "provider": {"description": "Where nodes come from.", "enum": [*names, None]},
            "nodes": {"description": "Nodes in all, or per node role.", "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "object", "additionalProperties": False, "minProperties": 1,
                 "properties": {role: {"type": "integer", "minimum": 0} for role in ROLES}},
                {"type": "null"}]},
            "setup": {"description": "Roles the setup stage applies: to all nodes, or per node role.",
                      "type": ["object", "null"], "additionalProperties": False,
                      "properties": {group: {"type": ["array", "null"],
                                             "items": {"type": "string", "pattern": _ROLE_NAME}}
                                     for group in SETUP_GROUPS}},
            "package": {"description": "The code every node runs: a folder or tarball with vcloud-launch "
                                       "(relative to the spec file), or {path, env}. `vca up` injects it when it "
                                       "changed.",
                        "anyOf": [{"type": "string", "minLength": 1},
                                  {"type": "object", "additionalProperties": False, "required": ["path"],
                                   "properties": {"path": {"type": "string", "minLength": 1},
                                                  "env": {"type": ["object", "null"],
                                                          "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                                          "additionalProperties": {"type": ["string", "number"]}}}},
                                  {"type": "null"}]},
            "services": {"description": "Commands kept running on the cluster, moved when their node fails.",
                         "type": ["array", "null"],
                         "items": {"type": "object", "additionalProperties": False, "required": ["name", "command"],
                                   "properties": {
                                       "name": {"type": "string", "pattern": _SERVICE_NAME},
                                       "command": {"anyOf": [{"type": "string", "minLength": 1},
                                                             {"type": "array", "minItems": 1,
                                                              "items": {"type": "string"}}]},
                                       "node": {"anyOf": [{"type": "string", "minLength": 1},
                                                          {"type": "integer", "minimum": 0}],
                                                "description": "any (default), a node's index or name"},
                                       "failover": {"type": "boolean"}}}},
            **sections,
        },
        # A provider's section only with that provider, and at most one section.
        "allOf": [
            *({"if": {"required": [name]}, "then": {"properties": {"provider": {"enum": [name, None]}}}}
              for name in names),
            *({"not": {"required": [a, b]}} for i, a in enumerate(names) for b in names[i + 1:]),
        ],
    }


def _section_schema(name: str, declared: tuple[Setting, ...]) -> dict[str, Any]:
    return {
        "description": f"Settings of provider {name}" + ("." if declared else " (it takes none)."),
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": {s.key: s.json_schema() for s in declared},
    }


def _read_text(path: Path) -> str:
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
                         "a cluster spec is a short YAML file: `vca spec-schema` shows its keys")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise UsageError(f"spec file {path} is not a YAML text file",
                         "give a YAML file: `vca spec-schema` shows its keys")
    return text
