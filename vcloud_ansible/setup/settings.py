"""The setup settings of a cluster: which Ansible roles the nodes of each node role get.

Stored in the cluster record (``ClusterRecord.setup``) as ``{"all"|"head"|"worker"|"dev": [role, ...]}``
(empty lists left out). A node gets the roles of ``all``, then those of its own node role, in the
order they were named. A role is one of:

* a name on Ansible's roles path: vca's own ``roles/`` first, then ``$ANSIBLE_ROLES_PATH``, then
  Ansible's defaults (``~/.ansible/roles``, ``/usr/share/ansible/roles``, ``/etc/ansible/roles``);
* a collection role ``namespace.collection.role`` of the collections vca runs Ansible with;
* a path to a role folder (anything with a ``/``, or starting with ``.`` or ``~``), stored absolute.

Everything here is pure but for looking roles up on disk: nothing runs Ansible.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import paths
from ..errors import UsageError
from ..node import ROLES

TARGETS = ("all", *ROLES)
"""Where a role applies: every node, or the nodes of one node role."""

ROLE_PARTS = ("tasks", "meta", "handlers", "defaults", "vars", "files", "templates")
"""A folder with one of these is a role folder."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_FQCN_RE = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)\.([A-Za-z0-9_]+)$")

Setup = dict[str, list[str]]


def check_target(on: str) -> str:
    if on not in TARGETS:
        raise UsageError(f"--on must be one of {', '.join(TARGETS)}, got '{on}'")
    return on


def split_request(text: str) -> tuple[str, str]:
    """``ROLE[@ON]`` (as ``vca provision --setup`` takes it) -> (role, on); ``on`` defaults to all.

    The part after the last ``@`` is a target when it has no ``/`` (a folder may contain ``@``).
    """
    role, at, on = text.rpartition("@")
    if not at or "/" in on:
        return text, "all"
    if not role or not on:
        raise UsageError(f"--setup expects ROLE[@ON], got '{text}'")
    return role, check_target(on)


def roles_path() -> list[Path]:
    """Ansible's roles path when vca runs the setup stage: vca's roles first, then the user's."""
    user = [Path(p).expanduser() for p in os.environ.get("ANSIBLE_ROLES_PATH", "").split(os.pathsep) if p]
    defaults = [Path("~/.ansible/roles").expanduser(), Path("/usr/share/ansible/roles"), Path("/etc/ansible/roles")]
    return list(dict.fromkeys([paths.roles_dir(), *user, *defaults]))


def is_path(role: str) -> bool:
    return "/" in role or role.startswith((".", "~"))


def stored_form(role: str) -> str:
    """How a role is kept in the settings (paths absolute), without checking that it exists."""
    if is_path(role):
        return str(Path(os.path.abspath(Path(role).expanduser())))
    return role


def resolve(role: str) -> str:
    """Check that ``role`` names a role Ansible will find; returns its stored form."""
    role = role.strip()
    if not role:
        raise UsageError("a setup role needs a name or a path")
    if is_path(role):
        folder = Path(stored_form(role))
        if not folder.is_dir():
            raise UsageError(f"setup role folder not found: {folder}")
        if not _is_role_folder(folder):
            raise UsageError(f"{folder} is not a role folder: it has no {', '.join(p + '/' for p in ROLE_PARTS)}")
        return str(folder)
    fqcn = _FQCN_RE.match(role)
    if fqcn:
        ns, coll, name = fqcn.groups()
        base = Path(paths.collections_path()) / "ansible_collections" / ns / coll / "roles" / name
        if not base.is_dir():
            raise UsageError(f"unknown setup role '{role}': collection {ns}.{coll} has no role {name}")
        return role
    if not _NAME_RE.match(role):
        raise UsageError(f"invalid setup role name '{role}'",
                         "give a role name (letters, digits, _ and -) or a path to a role folder")
    where = roles_path()
    if not any(_is_role_folder(p / role) for p in where):
        raise UsageError(f"unknown setup role '{role}' (not in {', '.join(map(str, where))})",
                         f"give the path of a role folder (./{role}), or add its folder to ANSIBLE_ROLES_PATH")
    return role


def _is_role_folder(folder: Path) -> bool:
    return folder.is_dir() and any((folder / part).is_dir() for part in ROLE_PARTS)


def normalized(setup: Mapping[str, Sequence[str]] | None) -> Setup:
    """Every target in TARGETS order, each role once; targets without roles left out. Not resolved."""
    setup = setup or {}
    for on in setup:
        check_target(on)
    out: Setup = {}
    for on in TARGETS:
        roles = list(dict.fromkeys(setup.get(on) or []))
        if roles:
            out[on] = roles
    return out


def merged(current: Mapping[str, Sequence[str]], requested: Mapping[str, Sequence[str]] | None) -> Setup:
    """``current`` with the ``requested`` roles appended (checked, resolved, each once per target)."""
    out = {on: list(roles) for on, roles in normalized(current).items()}
    for on, roles in normalized(requested).items():
        for role in roles:
            stored = resolve(role)
            if stored not in out.setdefault(on, []):
                out[on].append(stored)
    return normalized(out)


def without(current: Mapping[str, Sequence[str]], role: str, on: str | None) -> tuple[Setup, list[str]]:
    """``current`` without ``role`` (on ``on``, or wherever it is named); also the targets it left.

    Refuses a role that is not named there: nothing to forget is most likely a typo.
    """
    if on is not None:
        check_target(on)
    key = stored_form(role.strip())
    out = {t: list(roles) for t, roles in normalized(current).items()}
    left = [t for t, roles in out.items() if key in roles and (on is None or t == on)]
    if not left:
        where = f" on {on}" if on else ""
        named = ", ".join(f"{r}@{t}" for t, roles in out.items() for r in roles) or "none"
        raise UsageError(f"setup role '{role}' is not named{where} (named: {named})", "see `vca setup --list`")
    for t in left:
        out[t].remove(key)
    return normalized(out), left


def for_playbook(setup: Mapping[str, Sequence[str]]) -> Setup:
    """The ``vca_setup_roles`` extra var: every target, with an empty list where none is named."""
    current = normalized(setup)
    return {on: list(current.get(on, [])) for on in TARGETS}


def roles_of(setup: Mapping[str, Sequence[str]], node_role: str) -> list[str]:
    """The roles a node of ``node_role`` gets, in the order the setup stage applies them."""
    current = normalized(setup)
    return [*current.get("all", []), *current.get(node_role, [])]


def added(before: Mapping[str, Sequence[str]], after: Mapping[str, Sequence[str]]) -> Setup:
    """The roles named in ``after`` but not in ``before``, per target."""
    old = normalized(before)
    return normalized({on: [r for r in roles if r not in old.get(on, [])] for on, roles in normalized(after).items()})
