"""Run a playbook through ansible-runner (in process), with progress, per-host outcomes and safe secrets.

What ends up on disk, and where:

* ``state_dir/runs/<ident>/`` - ansible-runner's artifacts of one run (``stdout``, ``job_events/``,
  ``command``, ``rc``, ``status``); the last ``ARTIFACTS_KEPT`` runs are kept. Only run folders may live
  in ``state_dir/runs``: ansible-runner's rotation deletes whatever else is there.
* ``state_dir/facts/`` - Ansible's fact cache.
* Nothing else: extra vars travel in a private temp folder and the recorded environment is redacted
  (playbook/secrets.py). Ctrl-C stops Ansible's workers too (playbook/interrupts.py); the progress
  display comes from the event stream (playbook/progress.py).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner
from ansible_runner.exceptions import AnsibleRunnerException
from rich.console import Console

from vcloud_ansible import paths
from vcloud_ansible.errors import RemoteFailed, UsageError, VcaError
from vcloud_ansible.paths import control_path_dir
from vcloud_ansible.playbook.interrupts import Interrupts
from vcloud_ansible.playbook.progress import HostOutcome, PlaybookProgress, natural_key
from vcloud_ansible.playbook.secrets import Verbatim, private_data_dir, scrub_command_artifact, scrub_when_running

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
    with private_data_dir(all_vars) as (private_dir, vars_file), Interrupts() as interrupts:
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
        status_handler=scrub_when_running,
    )
    try:
        return ansible_runner.run(**kwargs)
    except AnsibleRunnerException as exc:
        raise VcaError(f"could not run {kwargs.get('playbook')}: {exc}") from exc
