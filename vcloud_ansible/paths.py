"""Where vca finds its playbooks, roles and ansible.cfg: in a checkout or inside the installed wheel."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@cache
def resource_root() -> Path:
    """The folder holding playbooks/, roles/, inventory/ and ansible.cfg.

    A checkout (or editable install) has them beside the package; a wheel carries them in _data/.
    """
    checkout = _PKG.parent
    if (checkout / "playbooks").is_dir() and (checkout / "ansible.cfg").is_file():
        return checkout
    return _PKG / "_data"


def playbooks_dir() -> Path:
    return resource_root() / "playbooks"


def roles_dir() -> Path:
    return resource_root() / "roles"


def ansible_cfg() -> Path:
    return resource_root() / "ansible.cfg"


def examples_dir() -> Path:
    return resource_root() / "examples"


@cache
def collections_path() -> str:
    """The collections of the installed ``ansible`` bundle, pinned so a stray copy cannot win."""
    import ansible_collections  # type: ignore[import-untyped]  # the bundle's namespace package

    return str(Path(next(iter(ansible_collections.__path__))).parent)


def vca_home() -> Path:
    """Per-user state: ``$VCA_HOME``, default ``~/.vca``."""
    return Path(os.environ.get("VCA_HOME") or Path.home() / ".vca")
