"""The cluster side of packages and jobs: inject, the cluster's current release, job state per node.

The node side is the agent roles/package/files/vca-node; this module only talks to it (one ssh session
per node for inject, vcloud_ansible.release.transport; one ssh round trip for status, logs and stop).
It takes the cluster's state and node lists, never a Cluster: vcloud_ansible.cluster lists the nodes,
holds the cluster's lock and calls in here.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import UsageError
from ..state import ClusterState, atomic_write
from .install import EOF_MARK, JobOptions

if TYPE_CHECKING:
    from ..node import Node
    from .transport import InjectResult, NodeInject

AGENT = "$HOME/vca/bin/vca-node"
STATUS_COMMAND = f'[ -x "{AGENT}" ] && "{AGENT}" status || echo job=none'


@dataclass
class Injected:
    """One release the cluster received, and the nodes that installed it successfully."""

    release_id: str
    tarball: str
    source: str
    options: JobOptions
    injected_at: float
    nodes: list[str] | None = None  # None: every node the cluster had then (a record of vca before 0.x)


@dataclass
class ReleaseRecord:
    """release.json: what each inject put where. Nodes added later receive the newest release that every
    other node received (the release the cluster runs), never an older one over a newer one."""

    releases: list[Injected] = field(default_factory=list)  # oldest first
    KEPT = 20

    @classmethod
    def load(cls, path: Path) -> ReleaseRecord:
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        items = d.get("releases") if "releases" in d else [d]  # the older format: one full inject
        out = cls()
        for r in items:
            try:
                out.releases.append(Injected(r["release_id"], r["tarball"], r["source"], JobOptions(**r["options"]),
                                             float(r["injected_at"]), r.get("nodes")))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps({"releases": [asdict(r) for r in self.releases[-self.KEPT:]]}, indent=2)
                     + "\n")

    def add(self, release_id: str, tarball: str, source: str, options: JobOptions, nodes: list[str],
            settings_applied: bool, *, newest: bool = True) -> None:
        """``nodes`` installed ``release_id``; ``settings_applied``: its job started with ``options``.
        ``newest``: it becomes the newest release (an inject); else it keeps its place (new nodes)."""
        old = next((r for r in self.releases if r.release_id == release_id), None)
        if old is not None and not newest:
            old.nodes = None if old.nodes is None else sorted(set(old.nodes) | set(nodes))
            return
        if old is not None:
            known = old.nodes if old.nodes is not None else []
            if not settings_applied and set(nodes) <= set(known):
                return  # a re-inject that changed nothing (its settings were refused) records nothing
            self.releases.remove(old)
            nodes = sorted(set(known) | set(nodes))
            if not settings_applied:
                options = old.options
        self.releases.append(Injected(release_id, tarball, source, options, time.time(), nodes))

    def forget_nodes(self, names: list[str]) -> None:
        """New nodes (their names may have been used by nodes since removed) hold nothing yet."""
        for r in self.releases:
            if r.nodes is not None:
                r.nodes = [n for n in r.nodes if n not in names]

    def cluster_wide(self, names: list[str]) -> Injected | None:
        """The newest release every one of these nodes received."""
        for r in reversed(self.releases):
            if r.nodes is None or set(names) <= set(r.nodes):
                return r
        return None


@dataclass
class JobState:
    release: str = ""  # the node's current release
    job: str = "none"  # running | exited | not-started | none (nothing injected yet)
    job_release: str = ""
    exit: str = ""  # exit code of an exited job ("lost" when it died unrecorded)
    since: float | None = None
    procs: int = 0
    running: int = 0
    doing: str = ""  # a running job's newest process (its command line)
    log_bytes: int = -1  # a running job's log size in this run (-1: not reported)

    @property
    def label(self) -> str:
        if self.job == "running":
            return "running" if self.procs <= 1 else f"running ({self.running}/{self.procs})"
        if self.job == "exited":
            return f"exited({self.exit})"
        return "not started"

    @classmethod
    def parse(cls, text: str) -> JobState:
        kv = dict(line.split("=", 1) for line in text.splitlines() if re.match(r"^[a-z_]+=", line))
        since = kv.get("since", "")
        return cls(
            release=kv.get("release", ""), job=kv.get("job", "none"), job_release=kv.get("job_release", ""),
            exit=kv.get("exit", ""), since=float(since) if since.isdigit() and since != "0" else None,
            procs=int(kv.get("procs", "0") or 0), running=int(kv.get("running", "0") or 0),
            doing=kv.get("doing", ""), log_bytes=int(kv["log_bytes"]) if kv.get("log_bytes", "").isdigit() else -1,
        )


def parse_mem(text: str | None) -> int:
    """'512M' / '2G' / '100000K' / '1048576' (bytes) -> KiB for the per-process limit (None/'': none).

    A size under 1 KiB (``100``, ``0``) would mean "no limit" on the node: refused."""
    if not text:
        return 0
    m = re.fullmatch(r"(\d+)([KMGT]?)i?B?", text.strip(), re.I)
    if not m:
        raise UsageError(f"memory limit must look like 512M or 2G, got '{text}'")
    n, unit = int(m.group(1)), m.group(2).upper()
    kib = {"": n // 1024, "K": n, "M": n << 10, "G": n << 20, "T": n << 30}[unit]
    if kib < 1:
        raise UsageError(f"memory limit '{text}' is under 1 KiB (a number alone is bytes)",
                         "give a size like 512M or 2G, or leave --mem out for no limit")
    if kib > MAX_MEM_KIB:
        raise UsageError(f"memory limit '{text}' is beyond what a node can set", "give a size like 512M or 2G")
    return kib


MAX_MEM_KIB = 1 << 50
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
RESERVED_ENV_PREFIX = "VCA_"


def parse_env(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``-e KEY=VALUE`` pairs: the value is text, kept byte for byte (never read as YAML)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"expected -e KEY=VALUE, got '{pair}'", "e.g. -e ROUNDS=10")
        check_env_var(key, value)
        out[key] = value
    return out


def check_env(env: object) -> dict[str, str]:
    """The job environment given to the inject playbook (``job_env``): a mapping, or its JSON/YAML
    text, whose values are text. A number or a boolean is refused rather than turned into text: YAML
    has already changed ``0755`` into 493 or ``1.10`` into 1.1 by then."""
    if env is None or env == "":
        return {}
    if isinstance(env, str):
        try:
            env = yaml.safe_load(env)
        except yaml.YAMLError as exc:
            raise UsageError(f"job_env is not a JSON or YAML mapping: {str(exc).splitlines()[0]}",
                             'give it like job_env=\'{"KEY": "value"}\'') from exc
    if not isinstance(env, dict):
        raise UsageError(f"job_env must be a mapping of names to text, got {type(env).__name__}",
                         'give it like job_env=\'{"KEY": "value"}\'')
    out: dict[str, str] = {}
    for key, value in env.items():
        if not isinstance(value, str):
            raise UsageError(f"job_env value of {key} is {type(value).__name__}, not text (YAML reads 0755, 1.10, "
                             "yes unquoted as numbers and booleans)",
                             'quote it to keep it as written, e.g. {"KEY": "0755"}')
        check_env_var(str(key), value)
        out[str(key)] = value
    return out


def check_env_var(key: str, value: str) -> None:
    """One job environment variable as every path into the node takes it (inject -e, job_env, job rows)."""
    if not ENV_KEY.fullmatch(key):
        raise UsageError(f"environment variable name '{key}' cannot be exported by the shell",
                         "use letters, digits and _ only, not starting with a digit")
    if key.startswith(RESERVED_ENV_PREFIX):
        raise UsageError(f"environment variable name '{key}' is reserved: VCA_* names are the node contract's",
                         "pick another name")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"the value of {key} is not valid UTF-8", "give it as UTF-8 text") from None
    if "\0" in value:
        raise UsageError(f"the value of {key} holds a NUL byte, which an environment cannot", "remove it")
    if EOF_MARK in value.splitlines():
        raise UsageError(f"the value of {key} holds a line '{EOF_MARK}', the marker vca's install script uses",
                         "change that line")


def parse_procs(text: str) -> str:
    if text == "auto" or (text.isdigit() and int(text) >= 1):
        return text
    raise UsageError(f"--procs must be a number >= 1 or 'auto', got '{text}'")


MAX_GRACE = 3600


def job_options(env: Mapping[str, str] | None = None, procs: int | str = 1, mem: str | None = None,
                tmux: bool = False, restart: bool = False, grace: int = 10, bucket: str | None = None
                ) -> JobOptions:
    """Checked options for a job, from what a user gives (``vca inject`` flags, ``Cluster.inject``
    arguments): the same checks, the same messages, before anything is packed or sent."""
    checked: dict[str, str] = {}
    for key, value in (env or {}).items():
        if not isinstance(value, str):
            raise UsageError(f"the value of {key} is {type(value).__name__}, not text",
                             "give environment values as text, e.g. {\"ROUNDS\": \"10\"}")
        check_env_var(str(key), value)
        checked[str(key)] = value
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= MAX_GRACE:
        raise UsageError(f"grace must be a whole number of seconds from 0 to {MAX_GRACE}, got {grace!r}")
    return JobOptions(env=checked, procs=parse_procs(str(procs)), mem_kb=parse_mem(mem), tmux=bool(tmux),
                      restart=bool(restart), grace=grace, bucket=bucket or "")


def release_file(state: ClusterState) -> Path:
    return state.dir / "release.json"


def inject(state: ClusterState, every: list[Node], targets: list[Node], source: Path, options: JobOptions,
           *, on_done: Callable[[NodeInject], None] | None = None, timeout: float | None = None) -> InjectResult:
    """Validate and pack locally (nothing is sent if the package is bad), then install and start the
    release on ``targets``, one ssh session each (vcloud_ansible.release.transport); ``every``: the
    cluster's nodes, for the node contract. The caller holds the cluster's lock."""
    from .package import prepare

    packed = prepare(source.expanduser().resolve(), state.dir / "releases")
    result = _install(state, every, targets, packed.path, packed.release_id, packed.compression, options,
                      on_done=on_done, timeout=timeout)
    if packed.note:
        result.notes.append(packed.note)
    record_inject(state, result, str(packed.path), str(source), options)
    return result


def record_inject(state: ClusterState, result: InjectResult, tarball: str, source: str, options: JobOptions
                  ) -> None:
    """Note in release.json which nodes installed the release (those that failed did not)."""
    done = [h for h, n in result.nodes.items() if n.ok]
    if not done:
        return
    started = any(n.report is not None and n.report.job == "started" for n in result.nodes.values())
    record = ReleaseRecord.load(release_file(state))
    record.add(result.release_id, tarball, source, options, done, started)
    record.save(release_file(state))


@dataclass
class Growth:
    """What nodes added to a cluster received (``reinject_current``)."""

    release_id: str = ""  # "" when no release reached every node yet: the new nodes got none
    result: InjectResult | None = None
    recorded: bool = False  # a release was ever injected


def reinject_current(state: ClusterState, every: list[Node], new: list[Node], *,
                     on_done: Callable[[NodeInject], None] | None = None) -> Growth:
    """After nodes were added (``every``: the cluster's nodes now, ``new`` among them): give the new
    nodes the release the cluster runs (the newest one every other node received) and start it. The
    other nodes keep their releases and jobs (a newer release included); they learnt the grown node
    list from the membership push (Cluster.push_membership) before this."""
    from .package import prepare

    names = {n.name for n in new}
    old = [n for n in every if n.name not in names]
    record = ReleaseRecord.load(release_file(state))
    if not record.releases:
        return Growth()  # nothing was ever injected: nothing to give, no contract to refresh
    record.forget_nodes(sorted(names))
    growth = Growth(recorded=True)
    cur = record.cluster_wide([n.name for n in old])
    if cur is None or not Path(cur.tarball).exists():
        record.save(release_file(state))
        return growth
    packed = prepare(Path(cur.tarball), state.dir / "releases")  # the same bytes, checked again
    targets = [n for n in every if n.name in names]
    opts = JobOptions(**{**asdict(cur.options), "restart": False})
    growth.release_id = packed.release_id
    growth.result = _install(state, every, targets, packed.path, packed.release_id, packed.compression, opts,
                             on_done=on_done)
    done = [h for h, n in growth.result.nodes.items() if n.ok]
    record.add(packed.release_id, cur.tarball, cur.source, cur.options, done, False, newest=False)
    record.save(release_file(state))
    return growth


def _install(state: ClusterState, every: list[Node], targets: list[Node], tarball: Path, release_id: str,
             compression: str, options: JobOptions, *, on_done: Callable[[NodeInject], None] | None,
             timeout: float | None = None) -> InjectResult:
    from .transport import inject_nodes

    url = ""
    if options.bucket:  # upload once; the nodes pull it through a presigned URL, holding no credentials
        from ..remote.s3 import publish

        url = publish(tarball, options.bucket, f"{state.name}/releases/{tarball.name}")
    return inject_nodes(state, every, targets, tarball, release_id, compression, options, url=url,
                        timeout=timeout, on_done=on_done)


def logs_command(proc: int, tail: int, follow: bool) -> str:
    return f'"{AGENT}" logs {proc} {tail} {int(follow)}'


def stop_command(grace: int) -> str:
    return f'[ -x "{AGENT}" ] && "{AGENT}" stop {int(grace)} || echo job=none'


def tmux_attach_command(proc: int) -> str:
    """Join the process's tmux session; when the job has ended (the session with it), end with its exit
    code. A detach (Ctrl-b d) leaves the job running and ends with 0."""
    return (f"tmux attach -t {shlex.quote(f'vca-{proc}')}; "
            f'rc=$(cat "$HOME/vca/job/proc-{int(proc)}/exitcode" 2>/dev/null) && exit "$rc"; exit 0')


def job_shell_command() -> str:
    """A login shell in the release folder of the node's job with its VCA_* environment (a plain login
    shell where no job ever ran or the agent is older)."""
    return (f'if [ -x "{AGENT}" ] && grep -q "^cmd_shell()" "{AGENT}"; then exec "{AGENT}" shell; '
            'else exec "${SHELL:-/bin/sh}" -l; fi')


def job_details(state: JobState) -> dict[str, Any]:
    return {"release": state.release, "job": state.label, "job_release": state.job_release,
            "since": state.since}
