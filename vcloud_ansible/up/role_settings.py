"""Setup roles whose required settings nobody gives: a role's meta/argument_specs.yml marks options
``required``; vca's setup stage takes values from the role's defaults and playbooks/group_vars. A role
named in a spec file whose required option has none there would fail on every node after they are
made: `vca up` refuses it first, naming the option and where to set it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .. import paths
from ..errors import UsageError
from ..setup import settings as setup_settings


def role_folder(role: str) -> Path | None:
    """The folder of a setup role in its stored form (a path, or a name on the roles path)."""
    if setup_settings.is_path(role):
        return Path(role)
    return next((p / role for p in setup_settings.roles_path() if (p / role / "meta").is_dir()
                 or (p / role / "tasks").is_dir()), None)


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None


def given_settings() -> set[str]:
    """Variables the setup stage gives every play: vca's playbooks/group_vars files."""
    out: set[str] = set()
    folder = paths.playbooks_dir() / "group_vars"
    for f in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
        doc = _load(f)
        if isinstance(doc, dict):
            out |= set(doc)
    return out


def missing(role: str, given: set[str]) -> list[str]:
    folder = role_folder(role)
    if folder is None:
        return []
    specs = _load(folder / "meta" / "argument_specs.yml")
    options = (((specs or {}).get("argument_specs") or {}).get("main") or {}).get("options") or {}
    defaults = _load(folder / "defaults" / "main.yml") or {}
    return [k for k, v in options.items() if isinstance(v, dict) and v.get("required") and "default" not in v
            and k not in defaults and k not in given]


def check_roles(setup: Mapping[str, Sequence[str]]) -> None:
    """Refuse a setup role with a required setting that has no value anywhere the stage looks."""
    given = given_settings()
    for on, roles in setup.items():
        for role in roles:
            lacking = missing(role, given)
            if lacking:
                raise UsageError(f"setup role {Path(role).name} (on {on} nodes) needs {', '.join(lacking)}, "
                                 "and nothing gives it",
                                 f"set it in {paths.playbooks_dir() / 'group_vars' / 'all.yml'} or the role's "
                                 "defaults/main.yml, or leave the role out")
