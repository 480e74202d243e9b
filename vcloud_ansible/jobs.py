"""The cluster side of packages and jobs: inject, the cluster's current release, job state per node.

The node side is the agent roles/package/files/vca-node; this module only talks to it (one ssh session
per node for inject, vcloud_ansible.release_ssh; one ssh round trip for status, logs and stop).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import UsageError
from .release import EOF_MARK, JobSettings
from .state import atomic_write

if TYPE_CHECKING:
    from .cluster import Cluster
    from .providers.base import Node
    from .release_ssh import InjectResult, NodeInject

AGENT = "$HOME/vca/bin/vca-node"
STATUS_COMMAND = f'[ -x "{AGENT}" ] && "{AGENT}" status || echo job=none'


@dataclass
class JobOptions:
    env: dict[str, str] = field(default_factory=dict)
    procs: str = "1"  # a number or "auto"
    mem_kb: int = 0
    tmux: bool = False
    restart: bool = False
    grace: int = 10
    bucket: str = ""  # S3 bucket the nodes download the package from ("" = over SSH)

    def extravars(self) -> dict[str, object]:
        return {"job_env": self.env, "procs": self.procs, "mem_kb": self.mem_kb, "tmux": self.tmux,
                "restart": self.restart, "grace": self.grace, "bucket": self.bucket}


@dataclass
class CurrentRelease:
    """What the cluster last injected: nodes added later receive and start the same."""

    release_id: str
    tarball: str
    source: str
    options: JobOptions
    injected_at: float

    @classmethod
    def load(cls, path: Path) -> CurrentRelease | None:
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(d["release_id"], d["tarball"], d["source"], JobOptions(**d["options"]), d["injected_at"])

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=2) + "\n")


@dataclass
class JobState:
    release: str = ""  # the node's current release
    job: str = "none"  # running | exited | not-started | none (nothing injected yet)
    job_release: str = ""
    exit: str = ""  # exit code of an exited job ("lost" when it died unrecorded)
    since: float | None = None
    procs: int = 0
    running: int = 0

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
        _check_env(key, value)
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
        _check_env(str(key), value)
        out[str(key)] = value
    return out


def _check_env(key: str, value: str) -> None:
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


def release_file(cluster: Cluster) -> Path:
    return cluster.state.dir / "release.json"


def inject(cluster: Cluster, source: Path, options: JobOptions, indexes: list[int] | None = None,
           *, on_done: Callable[[NodeInject], None] | None = None, timeout: float | None = None,
           nodes: list[Node] | None = None) -> InjectResult:
    """Validate and pack locally (nothing is sent if the package is bad), then install and start the
    release on the nodes (all, or ``indexes``), one ssh session each (vcloud_ansible.release_ssh).
    ``nodes``: the cluster's nodes, when the caller has just listed them."""
    from .package import prepare

    every = cluster.nodes() if nodes is None else nodes
    targets = cluster.select(indexes, every)  # unknown nodes are refused before packing
    packed = prepare(source.expanduser().resolve(), cluster.state.dir / "releases")
    result = _install(cluster, every, targets, packed.path, packed.release_id, packed.compression, options,
                      on_done=on_done, timeout=timeout)
    if result.ok and not indexes:
        CurrentRelease(packed.release_id, str(packed.path), str(source), options, time.time()).save(
            release_file(cluster))
    return result


def reinject_current(cluster: Cluster, *, on_done: Callable[[NodeInject], None] | None = None
                     ) -> InjectResult | None:
    """Give every node the cluster's current release and the grown contract (new nodes start it; the
    others keep their job and receive nothing but the contract)."""
    from .package import prepare

    cur = CurrentRelease.load(release_file(cluster))
    if cur is None or not Path(cur.tarball).exists():
        return None
    packed = prepare(Path(cur.tarball), cluster.state.dir / "releases")  # the same bytes, checked again
    every = cluster.nodes()
    opts = JobOptions(**{**asdict(cur.options), "restart": False})
    return _install(cluster, every, every, packed.path, packed.release_id, packed.compression, opts,
                    on_done=on_done)


def _install(cluster: Cluster, every: list[Node], targets: list[Node], tarball: Path, release_id: str,
             compression: str, options: JobOptions, *, on_done: Callable[[NodeInject], None] | None,
             timeout: float | None = None) -> InjectResult:
    from .release_ssh import inject_nodes

    url = ""
    if options.bucket:  # upload once; the nodes pull it through a presigned URL, holding no credentials
        from .objectstore import publish

        url = publish(tarball, options.bucket, f"{cluster.name}/releases/{tarball.name}")
    job = JobSettings(procs=options.procs, mem_kb=options.mem_kb, tmux=options.tmux, restart=options.restart,
                      grace=options.grace)
    return inject_nodes(cluster.state, every, targets, tarball, release_id, compression, options.env, job,
                        url=url, timeout=timeout, on_done=on_done)


def logs_command(proc: int, tail: int, follow: bool) -> str:
    return f'"{AGENT}" logs {proc} {tail} {int(follow)}'


def stop_command(grace: int) -> str:
    return f'[ -x "{AGENT}" ] && "{AGENT}" stop {int(grace)} || echo job=none'


def tmux_attach_command(proc: int) -> str:
    return f"tmux attach -t {shlex.quote(f'vca-{proc}')}"


def job_details(state: JobState) -> dict[str, Any]:
    return {"release": state.release, "job": state.label, "job_release": state.job_release,
            "since": state.since}
