"""What a playbook run writes to disk, and how secrets stay out of it.

* ansible-runner's ``private_data_dir`` is a fresh 0700 folder in the temp dir, deleted after the run;
  every extra var (plain and secret: a value given to ``vca run`` may be a password) goes there as a
  0600 file passed with ``-e @file``, so the recorded command line holds only its path. Values wrapped
  in :class:`Verbatim` are written ``!unsafe``: Ansible takes them as text and never templates them.
* ansible-runner 2.4 records the whole process environment (``os.environ`` plus ours) in
  ``artifacts/<ident>/command``. We rewrite that file before Ansible starts, keeping only the values of
  harmless variables (``ANSIBLE_*``, ``PATH``, ...) and redacting everything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

_REDACTED = "<redacted>"
_PUBLIC_ENV_PREFIXES = ("ANSIBLE_", "RUNNER_", "AWX_", "LC_")
_PUBLIC_ENV_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "SHELL", "TERM", "PWD", "TMPDIR"})
_SECRET_ENV_NAME = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE|AUTH|_KEY$|_KEY_ID$|SESSION")


# -- the command artifact --------------------------------------------------------------------------


def _public_env(name: str) -> bool:
    if _SECRET_ENV_NAME.search(name.upper()):
        return False
    return name in _PUBLIC_ENV_NAMES or name.startswith(_PUBLIC_ENV_PREFIXES)


def scrub_command_artifact(artifact_dir: Path) -> None:
    """Redact the environment ansible-runner wrote into ``artifact_dir/command``."""
    command_file = artifact_dir / "command"
    try:
        data = json.loads(command_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    env = data.get("env") if isinstance(data, dict) else None
    if not isinstance(env, dict):
        return
    data["env"] = {k: (v if _public_env(k) else _REDACTED) for k, v in env.items()}
    tmp = command_file.with_name("command.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, command_file)


def scrub_when_running(status_data: Mapping[str, Any], runner_config: Any) -> None:
    """ansible-runner's status handler."""
    # 'running' comes right after ansible-runner wrote the command file, before Ansible starts.
    if status_data.get("status") == "running":
        scrub_command_artifact(Path(runner_config.artifact_dir))


# -- the private data dir and the extra vars ------------------------------------------------------


class Verbatim(str):
    """An extra var's text that Ansible must take as is, never as a template (``!unsafe``)."""

    __slots__ = ()


class _VarsDumper(yaml.SafeDumper):
    pass


_VarsDumper.add_representer(Verbatim, lambda d, v: d.represent_scalar("!unsafe", str(v), style="'"))


def _plain(value: object) -> object:
    """``value`` as the plain types YAML writes (what JSON on the command line took before)."""
    if isinstance(value, Verbatim) or value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):  # subclasses: a str enum's value, as json.dumps wrote it
        return str.__str__(value)
    for kind in (bool, int, float):
        if isinstance(value, kind):
            return kind(value)
    raise TypeError(f"extra var of type {type(value).__name__} cannot be passed to Ansible")


def _write_private_vars(path: Path, data: Mapping[str, object]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.dump(_plain(data), f, Dumper=_VarsDumper, allow_unicode=True, sort_keys=False)


def _write_private_json(path: Path, data: Mapping[str, object]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)


@contextlib.contextmanager
def private_data_dir(extravars: Mapping[str, object] | None) -> Iterator[tuple[Path, Path | None]]:
    """A fresh 0700 folder outside the state dir for ansible-runner, and the extra vars file in it."""
    folder = Path(tempfile.mkdtemp(prefix="vca-run-"))
    try:
        # ansible-runner takes settings only from this file (a settings= argument is dropped when the
        # file is missing). pexpect_timeout is how often it polls the cancel callback: Ctrl-C within 1 s.
        (folder / "env").mkdir(mode=0o700)
        _write_private_json(folder / "env" / "settings", {"pexpect_timeout": 1})
        vars_file = None
        if extravars:
            vars_file = folder / "extra-vars.yml"
            _write_private_vars(vars_file, extravars)
        yield folder, vars_file
    finally:
        shutil.rmtree(folder, ignore_errors=True)
