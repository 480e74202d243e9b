"""Where vca finds its playbooks, roles and ansible.cfg: in a checkout or inside the installed wheel."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

from .errors import EnvironmentProblem

_PKG = Path(__file__).resolve().parent
# ssh's ControlPath is ``<dir>/%C``: 40 hex characters, and ssh appends ``.`` + 16 random characters while
# it sets the master up. A unix socket path has at most 107 bytes: the folder may have 48.
_CONTROL_DIR_MAX = 48


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


def control_path_dir(state_dir: Path) -> Path:
    """Folder for ssh control sockets: ``state_dir/cp`` when short enough, else a private /tmp folder.

    The /tmp name is derived from the uid and a hash of ``state_dir``, so it is stable across runs.
    """
    state_dir = Path(os.path.abspath(state_dir))
    short = state_dir / "cp"
    if len(os.fsencode(short)) <= _CONTROL_DIR_MAX:
        return short
    digest = hashlib.sha256(os.fsencode(state_dir)).hexdigest()[:16]
    return Path("/tmp") / f"vca-{os.getuid()}-{digest}"


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` 0700 (tightening one of ours); refuse a folder someone else owns or a symlink,
    which in a shared /tmp could be a trap."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.lstat()
    if folder.is_symlink() or not folder.is_dir() or st.st_uid != os.getuid():
        raise EnvironmentProblem(
            f"unsafe private folder {folder} (not a folder of yours)", hint="remove it and run again"
        )
    if st.st_mode & 0o077:
        folder.chmod(0o700)
