"""Run a playbook through ansible-runner (in process), with progress, per-host outcomes and safe secrets.

What ends up on disk, and where:

* ``state_dir/runs/<ident>/`` - ansible-runner's artifacts of one run (``stdout``, ``job_events/``,
  ``command``, ``rc``, ``status``); the last ``ARTIFACTS_KEPT`` runs are kept. Only run folders may live
  in ``state_dir/runs``: ansible-runner's rotation deletes whatever else is there.
* ``state_dir/facts/`` - Ansible's fact cache.
* Nothing else. ansible-runner's ``private_data_dir`` is a fresh 0700 folder in the temp dir, deleted
  after the run; every extra var (plain and secret: a value given to ``vca run`` may be a password)
  goes there as a 0600 file passed with ``-e @file``, so the recorded command line holds only its
  path. Values wrapped in :class:`Verbatim` are written ``!unsafe``: Ansible takes them as text and
  never templates them.

ansible-runner 2.4 records the whole process environment (``os.environ`` plus ours) in
``artifacts/<ident>/command``. We rewrite that file before Ansible starts, keeping only the values of
harmless variables (``ANSIBLE_*``, ``PATH``, ...) and redacting everything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import ansible_runner
import yaml
from ansible_runner.exceptions import AnsibleRunnerException
from rich.console import Console

from vcloud_ansible import paths
from vcloud_ansible.errors import RemoteFailed, UsageError, VcaError
from vcloud_ansible.paths import control_path_dir
from vcloud_ansible.playbook.progress import HostOutcome, PlaybookProgress, natural_key

__all__ = [
    "ARTIFACTS_KEPT",
    "HostOutcome",
    "RunResult",
    "Verbatim",
    "ansible_environment",
    "control_path_dir",
    "resolve_playbook",
    "run_playbook",
]

ARTIFACTS_KEPT = 10
"""How many runs' artifact folders are kept in ``state_dir/runs``."""

PLAYBOOK_SUFFIXES = (".yml", ".yaml")
NOT_VERBS = frozenset({"validate"})
"""Playbooks in playbooks/ that are building blocks of the verbs, not verbs (provider-internal plays
live in playbooks/internal/, which is never offered)."""

# ssh's ControlPath is ``<dir>/%C``: 40 hex characters, and ssh appends ``.`` + 16 random characters while
# it sets the master up. A unix socket path has at most 107 bytes: the folder may have 49.
_REDACTED = "<redacted>"
_PUBLIC_ENV_PREFIXES = ("ANSIBLE_", "RUNNER_", "AWX_", "LC_")
_PUBLIC_ENV_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "SHELL", "TERM", "PWD", "TMPDIR"})
_SECRET_ENV_NAME = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE|AUTH|_KEY$|_KEY_ID$|SESSION")


@dataclass
class RunResult:
    """How a playbook run went. ``hosts`` holds every host that reported, in natural order."""

    rc: int
    status: str
    hosts: dict[str, HostOutcome]
    artifacts_dir: Path
    error: str | None = None
    """The first error line Ansible printed outside any task (syntax error, bad inventory, ...)."""
    elapsed: float = 0.0

    @property
    def failed_hosts(self) -> list[str]:
        """Hosts that failed or were unreachable, ``node-2`` before ``node-10``."""
        bad = (h for h, o in self.hosts.items() if o.status in ("failed", "unreachable"))
        return sorted(bad, key=natural_key)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.status == "successful" and not self.failed_hosts

    @property
    def changed_total(self) -> int:
        return sum(o.changed for o in self.hosts.values())

    def raise_for_failures(self, what: str) -> None:
        """Raise ``RemoteFailed`` naming the failed hosts when any host failed, or the run did not succeed."""
        failed = self.failed_hosts
        if not failed and self.rc == 0 and self.status == "successful":
            return
        hint = f"full Ansible output in {self.artifacts_dir / 'stdout'}"
        if failed:
            raise RemoteFailed.naming(what, {h: self._why(h) for h in failed}, len(self.hosts), hint, "hosts")
        raise RemoteFailed(self._run_message(what), hosts=[], hint=hint)

    def _why(self, host: str) -> str:
        o = self.hosts[host]
        if o.failed_task is None:
            return o.status
        return f"{o.failed_task}: {o.message}" if o.message else o.failed_task

    def _run_message(self, what: str) -> str:
        if self.status == "timeout":
            return f"{what} timed out"
        if self.status == "canceled":
            return f"{what} was canceled"
        detail = f": {self.error}" if self.error else ""
        return f"{what} failed (ansible-playbook exit code {self.rc}){detail}"


# -- playbooks -------------------------------------------------------------------------------------


def available_playbooks() -> list[str]:
    """Names of the user verbs vca ships as playbooks (``collect``, ``inject``, ``ping``, ``setup``)."""
    folder = paths.playbooks_dir()
    if not folder.is_dir():
        return []
    return sorted({p.stem for p in folder.iterdir() if p.suffix in PLAYBOOK_SUFFIXES and p.is_file()} - NOT_VERBS)


def resolve_playbook(name: str | Path) -> Path:
    """``inject`` -> ``playbooks_dir()/inject.yml``; a path to an existing ``.yml`` file is taken as is."""
    given = Path(name).expanduser()
    if given.suffix in PLAYBOOK_SUFFIXES and given.is_file():
        return given.resolve()
    if isinstance(name, Path) or os.sep in str(name):
        raise UsageError(f"playbook not found: {given}")
    stem = given.stem if given.suffix in PLAYBOOK_SUFFIXES else str(name)
    for suffix in PLAYBOOK_SUFFIXES:
        candidate = paths.playbooks_dir() / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    known = ", ".join(available_playbooks()) or f"none found in {paths.playbooks_dir()}"
    raise UsageError(f"unknown playbook '{name}'; available: {known}")


# -- environment -----------------------------------------------------------------------------------


def _path_with_this_python() -> str:
    """PATH with this interpreter's bin folder first, so the ``ansible-playbook`` next to it runs."""
    current = os.environ.get("PATH", os.defpath)
    bindir = Path(sys.executable).parent
    if (bindir / "ansible-playbook").exists():
        return f"{bindir}{os.pathsep}{current}"
    return current


def ansible_environment(
    state_dir: Path, env: Mapping[str, str] | None = None, *, color: bool = False
) -> dict[str, str]:
    """The environment vca gives Ansible for a cluster whose state lives in ``state_dir``.

    Ansible runs on a pty under ansible-runner, so it colours its output unless told not to; without
    ``color`` the artifacts' stdout stays plain text.
    """
    result = {
        "ANSIBLE_CONFIG": str(paths.ansible_cfg()),
        "ANSIBLE_ROLES_PATH": str(paths.roles_dir()),
        "ANSIBLE_COLLECTIONS_PATH": paths.collections_path(),
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(state_dir / "facts"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_path_dir(state_dir)),
        # ansible-runner sets host key checking to False unless the variable is there: keep it on.
        "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
        "PATH": _path_with_this_python(),
    }
    if not color:
        result["ANSIBLE_NOCOLOR"] = "1"
    result.update(env or {})
    return result


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


def _on_status(status_data: Mapping[str, Any], runner_config: Any) -> None:
    # 'running' comes right after ansible-runner wrote the command file, before Ansible starts.
    if status_data.get("status") == "running":
        scrub_command_artifact(Path(runner_config.artifact_dir))


# -- private data dir and secrets ------------------------------------------------------------------


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
def _private_data_dir(extravars: Mapping[str, object] | None) -> Iterator[tuple[Path, Path | None]]:
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


# -- signals ---------------------------------------------------------------------------------------


def _ansible_children() -> list[int]:
    """Our child ``ansible-playbook`` processes (Linux /proc; elsewhere none are found)."""
    me, found = os.getpid(), []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            stat = Path("/proc", entry, "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != me:
                continue
            argv = Path("/proc", entry, "cmdline").read_bytes().split(b"\0")[:2]
        except (OSError, ValueError, IndexError):
            continue
        if any(arg.endswith(b"ansible-playbook") for arg in argv):
            found.append(int(entry))
    return found


class _Interrupts:
    """Catch SIGINT/SIGTERM during the run, stop Ansible cleanly, then re-deliver the signal to the caller.

    ansible-runner cancels by SIGKILLing ansible-playbook's process group, which misses Ansible's workers
    (each runs in its own session): their commands and ssh connections would live on. So the signal is
    first passed on to ansible-playbook, which stops its workers and exits; only if it is still there
    after ``GRACE`` seconds does ansible-runner kill it. ansible-runner's own handler, installed when no
    cancel callback is given, would also stay installed for good and swallow every later Ctrl-C.
    """

    GRACE = 5.0
    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._forwarded_at: float | None = None

    def should_cancel(self) -> bool:
        """ansible-runner's cancel callback, polled about once a second."""
        if self.received is None:
            return False
        if self._forwarded_at is None:
            self._forwarded_at = time.monotonic()
            for pid in _ansible_children():
                with contextlib.suppress(OSError):
                    os.kill(pid, self.received)
            return False
        return time.monotonic() - self._forwarded_at > self.GRACE

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in self._SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:  # None: installed outside Python, cannot be restored
                signal.signal(sig, handler)

    def redeliver(self) -> None:
        if self.received is not None:
            signal.raise_signal(self.received)


# -- running ---------------------------------------------------------------------------------------


def _inventory_args(inventory: str | Path | None) -> tuple[str | None, list[str]]:
    """(inventory for ansible-runner, extra command line). Host lists like ``a,b,`` go on the command line:
    ansible-runner would write any string that is not an existing path into a file and use that."""
    if inventory is None:
        return None, []
    if Path(inventory).expanduser().exists():
        return str(Path(inventory).expanduser().resolve()), []
    if isinstance(inventory, str) and "," in inventory:
        return None, ["-i", inventory]
    raise UsageError(f"inventory not found: {inventory}")


def _ident(playbook: Path) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{playbook.stem}-{uuid.uuid4().hex[:6]}"


def _project_dir(fallback: Path) -> str:
    """Ansible runs in the caller's working directory (ansible-runner's project_dir is its cwd)."""
    try:
        return os.getcwd()
    except OSError:
        return str(fallback)


def run_playbook(
    playbook: str | Path,
    *,
    inventory: str | Path | None,
    state_dir: Path,
    extravars: dict[str, object] | None = None,
    secret_extravars: dict[str, object] | None = None,
    limit: str | None = None,
    tags: str | None = None,
    env: dict[str, str] | None = None,
    verbose: int = 0,
    hosts_expected: list[str] | None = None,
    title: str | None = None,
    console: Console | None = None,
    timeout: int | None = None,
    keep_runs: int = ARTIFACTS_KEPT,
) -> RunResult:
    """Run ``playbook`` (a name under playbooks/ or a path) and return how every host did.

    ``verbose`` 0 shows vca's progress and a summary table on ``console``; ``verbose`` >= 1 streams
    Ansible's own output there instead and passes ``-v`` that many times. Never raises for failed hosts:
    call ``raise_for_failures``. Ctrl-C (or SIGTERM) stops Ansible, then is re-delivered to the caller.
    """
    path = resolve_playbook(playbook)
    state_dir = Path(os.path.abspath(state_dir))
    inv, inv_args = _inventory_args(inventory)
    for sub in ("runs", "facts"):
        (state_dir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.ensure_private_dir(control_path_dir(state_dir))
    console = console or Console(stderr=True)
    progress = PlaybookProgress(console, title or path.stem, hosts_expected, verbose=verbose > 0)
    all_vars = {**(extravars or {}), **(secret_extravars or {})}
    with _private_data_dir(all_vars) as (private_dir, vars_file), _Interrupts() as interrupts:
        cmdline = [*inv_args, *(["-e", f"@{vars_file}"] if vars_file else [])]
        with progress:
            runner = _run(
                private_data_dir=str(private_dir),
                artifact_dir=str(state_dir / "runs"),
                project_dir=_project_dir(private_dir),
                ident=_ident(path),
                playbook=str(path),
                inventory=inv,
                cmdline=shlex.join(cmdline) if cmdline else None,
                limit=limit,
                tags=tags,
                verbosity=verbose or None,
                envvars=ansible_environment(state_dir, env, color=verbose > 0 and console.is_terminal),
                rotate_artifacts=keep_runs,
                timeout=timeout,
                event_handler=progress.handle,
                cancel_callback=interrupts.should_cancel,
            )
        scrub_command_artifact(Path(runner.config.artifact_dir))
    interrupts.redeliver()
    if not progress.verbose:
        progress.print_summary()
    return RunResult(
        rc=runner.rc if isinstance(runner.rc, int) else -1,
        status=str(runner.status),
        hosts=progress.outcomes(),
        artifacts_dir=Path(runner.config.artifact_dir),
        error=progress.error,
        elapsed=progress.elapsed,
    )


def _run(**kwargs: Any) -> Any:
    """``ansible_runner.run`` with what every vca run needs."""
    kwargs.update(
        # any type but "jsonfile": ansible-runner would point the fact cache into the artifacts
        fact_cache_type="vca-state-dir",
        # no env/extravars, env/envvars, env/cmdline, ... files in private_data_dir
        suppress_env_files=True,
        # never print Ansible's output itself: progress.handle shows it on the console when verbose
        quiet=True,
        status_handler=_on_status,
    )
    try:
        return ansible_runner.run(**kwargs)
    except AnsibleRunnerException as exc:
        raise VcaError(f"could not run {kwargs.get('playbook')}: {exc}") from exc
