"""JobArray: one node per row of a job CSV, each autonomous once started (see jobs/runner.py).

    from vcloud_ansible import JobArray
    arr = JobArray("sweep")
    arr.run("jobs.csv", bucket="results", max_parallel=4, retries=1)   # returns once every job started
    arr.wait()                                                          # to the end, lost nodes retried
    arr.fetch("out/")                                                   # out/<job>/..., checksums verified

The array is a cluster of the same name (its nodes are the job nodes, one per running job); what it
ran and where it stands lives in the bucket (jobs/store.py), so ``status`` works from any machine that
reaches the bucket: ``JobArray("sweep", bucket="results").status()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ClusterNotFound, RemoteFailed, UsageError, VcaError
from ..node import Node
from ..providers import Provider, get_provider
from ..providers.base import Configurable, Say
from ..remote import access
from ..remote import ssh as sshexec
from ..state import ClusterState, atomic_write, list_clusters
from . import ec2 as jobs_ec2
from . import spec as jobspec
from .status import FINAL, JobStatus, counts, job_status
from .store import ArrayStore

RECORD = "jobs.json"  # beside the cluster record: marks the cluster as a job array
RUNNER = Path(__file__).with_name("runner.py")
ALIVE = ("running", "pending")  # provider node states that count as a live job node
DEFAULT_LIFETIME_S = 24 * 3600  # presigned uploads stay valid this long past a job's timeout
UPLOAD_SECONDS = 900  # a node retries its upload this long before it leaves itself to the expiry guard
HOLD_S = 3600  # a node whose upload gave up powers off this long after (lab: disk kept; ec2: terminated)
ORPHAN_AFTER_S = 300  # a node no job was started on for this long is removed by whoever follows the array


def _quiet(_msg: str) -> None:
    pass


@dataclass
class ArrayStatus:
    name: str
    bucket: str
    jobs: list[JobStatus]
    nodes: list[Node] = field(default_factory=list)  # the job nodes the provider lists now

    @property
    def counts(self) -> dict[str, int]:
        return counts(self.jobs)

    @property
    def finished(self) -> bool:
        return all(j.state in FINAL for j in self.jobs)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "bucket": self.bucket, "counts": self.counts,
                "jobs": [j.to_json() for j in self.jobs]}


@dataclass
class FetchResult:
    local: Path
    files: int = 0
    bytes: int = 0
    jobs: list[str] = field(default_factory=list)  # fetched
    missing: list[str] = field(default_factory=list)  # not finished: nothing to fetch yet


class JobArray:
    def __init__(self, name: str, home: Path | None = None, *, bucket: str | None = None) -> None:
        self.state = ClusterState(name, home)
        self.name = self.state.name
        self._bucket = bucket
        self._doc: dict[str, Any] | None = None
        self._again: dict[str, int] = {}  # job -> its attempt when `retry` was asked to start it again

    # -- the array's record ----------------------------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.state.dir / RECORD

    def _local(self) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = json.loads(self.record_path.read_text())
            return doc
        except (OSError, ValueError):
            return None

    @property
    def bucket(self) -> str:
        if self._bucket:
            return self._bucket
        local = self._local()
        if local and local.get("bucket"):
            return str(local["bucket"])
        raise UsageError(f"no job array '{self.name}' is known here",
                         "give its bucket (--bucket B) to read it from S3, or see `vca jobs list`")

    def store(self) -> ArrayStore:
        return ArrayStore(self.bucket, self.name)

    def doc(self, store: ArrayStore | None = None) -> dict[str, Any]:
        """The array as `jobs run` wrote it to the bucket (rows, provider, limits)."""
        if self._doc is None:
            doc = (store or self.store()).read_array()
            if doc is None:
                raise UsageError(f"no job array '{self.name}' in s3://{self.bucket}",
                                 "check the name and --bucket; `vca jobs list` names the arrays known here")
            self._doc = doc
        return self._doc

    def rows(self, store: ArrayStore | None = None) -> list[jobspec.JobRow]:
        return [jobspec.JobRow.from_json(r) for r in self.doc(store)["rows"]]

    def provider(self, store: ArrayStore | None = None) -> Provider:
        return get_provider(str(self.doc(store)["provider"]))

    # -- run -------------------------------------------------------------------------------------
    def run(self, csv_path: str | Path, *, bucket: str, setup: str | Path | None = None,
            package: str | Path | None = None, max_parallel: int | None = None, retries: int = 0,
            retry_on_exit: Sequence[int] = (), provider: str = "local", lifetime: int = DEFAULT_LIFETIME_S,
            settings: dict[str, Any] | None = None, say: Say = _quiet, poll: float = 1.0,
            timeout: float = 3600.0) -> ArrayStatus:
        """Check the CSV whole (nothing is made when a row is wrong), record the array in the bucket, then
        start one node per row, never more than ``max_parallel`` at once; returns once every job started
        (or finished). Lost nodes seen meanwhile are retried up to ``retries`` times; a job whose command
        exited with a code in ``retry_on_exit`` too. ``settings``: the provider's (ec2: region, image,
        user, ssh_cidrs, ...; see jobs/ec2.py for what job nodes add and refuse)."""
        prov = get_provider(provider)
        if settings and not isinstance(prov, Configurable):
            raise UsageError(f"provider {prov.name} takes no settings", "leave out the ec2 flags")
        given = jobs_ec2.job_settings(dict(settings or {})) if isinstance(prov, Configurable) else {}
        rows = jobspec.read_file(Path(csv_path), check_type=_type_checker(provider))
        if max_parallel is not None and max_parallel < 1:
            raise UsageError(f"--max-parallel must be at least 1, got {max_parallel}")
        if not 0 <= retries <= 10:
            raise UsageError(f"--retries must be from 0 to 10, got {retries}")
        setup_path = _check_file(setup, "setup script") if setup else None
        pkg = Path(package).expanduser() if package else None
        if pkg is not None and not pkg.is_dir():
            raise UsageError(f"package {pkg} is not a folder", "give the folder the jobs run in")
        if self.state.exists():
            what = "job array" if self._local() else "cluster"
            raise UsageError(f"a {what} named '{self.name}' exists already",
                             f"pick another --name, or `vca jobs cancel {self.name}` first" if self._local()
                             else "pick another --name")
        prov.check()
        stored: dict[str, Any] = {}
        if isinstance(prov, Configurable):  # ec2: read-only checks against EC2 before anything is made
            stored = prov.prepare({}, given, creating=True)
            if stored.get("security_group"):
                from ..providers.ec2 import api as ec2_api

                with ec2_api.aws_errors(str(stored["region"])):
                    jobs_ec2.check_group(ec2_api.client(str(stored["region"])), str(stored["security_group"]))
        self._bucket = bucket
        store = ArrayStore(bucket, self.name)
        store.check_bucket()
        if store.read_array() is not None:
            raise UsageError(f"s3://{bucket}/{self.name}/ holds a job array already",
                             "pick another --name (results are never overwritten)")
        doc = {"format": "vca-job-array/1", "name": self.name, "provider": prov.name, "bucket": bucket,
               "rows": [r.to_json() for r in rows], "max_parallel": max_parallel or len(rows),
               "retries": retries, "retry_on_exit": sorted(set(retry_on_exit)), "lifetime": lifetime,
               "created_at": time.time()}
        if prov.name == "ec2":
            doc["ec2"] = jobs_ec2.record(stored)
        self.state.create(prov.name, stored)
        atomic_write(self.record_path, json.dumps({"bucket": bucket, "created_at": doc["created_at"]}) + "\n")
        self._doc = doc
        try:
            self._build_package(pkg, setup_path)
            store.write_array(doc)
        except BaseException:
            self._forget()
            raise
        return self.follow(until="started", say=say, poll=poll, timeout=timeout)

    def _build_package(self, pkg: Path | None, setup: Path | None) -> Path:
        """The package every job node gets: the user's folder, the runner as vcloud-launch, the setup."""
        dest = self.state.dir / "package"
        shutil.rmtree(dest, ignore_errors=True)
        if pkg is not None:
            shutil.copytree(pkg, dest, symlinks=True)
        else:
            dest.mkdir(parents=True)
        meta = dest / ".vca-job"
        meta.mkdir(exist_ok=True)
        shutil.copy(RUNNER, meta / "runner.py")
        if setup is not None:
            shutil.copy(setup, meta / "setup")
        for name in ("vcloud-launch", "vca-launch"):
            (dest / name).unlink(missing_ok=True)
        launch = dest / "vcloud-launch"
        launch.write_text('#!/bin/sh\nexec python3 "$(dirname "$0")/.vca-job/runner.py"\n')
        launch.chmod(0o755)
        return dest

    # -- following -------------------------------------------------------------------------------
    def follow(self, until: str = "finished", say: Say = _quiet, poll: float = 1.0, timeout: float = 3600.0,
               on_look: Callable[[ArrayStatus], None] | None = None) -> ArrayStatus:
        """Look, reap nodes that are gone, start what may start, until every job started (``until``
        "started") or ended ("finished"). Raises VcaError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        store = self.store()
        while True:
            st, launched, todo = self._step(store, say)
            if on_look:
                on_look(st)
            if not launched and not todo and all(j.state in (*FINAL, "lost") for j in st.jobs):
                self._reap(st, say, everything=True)
                return st
            if until == "started" and not todo:
                return st
            if time.monotonic() > deadline:
                raise VcaError(f"job array '{self.name}' not {until} after {timeout:.0f} s: "
                               + ", ".join(f"{k} {v}" for k, v in sorted(st.counts.items())))
            time.sleep(poll)

    def _todo(self, st: ArrayStatus) -> list[JobStatus]:
        """The jobs to start: never started, lost or failed with a code to retry on (within --retries)."""
        doc = self.doc()
        retries = int(doc.get("retries", 0))
        again = set(doc.get("retry_on_exit", []))
        return [j for j in st.jobs if j.state == "pending"
                or (j.state == "lost" and j.attempt <= retries)
                or (j.state == "failed" and j.exit_code in again and j.attempt <= retries)
                or (j.state in ("lost", "failed") and self._again.get(j.name) == j.attempt)]

    def _step(self, store: ArrayStore, say: Say) -> tuple[ArrayStatus, bool, list[JobStatus]]:
        """One look: reap, start what may start. Returns the status seen (before the start), whether
        it started any job, and the jobs still to start."""
        st = self.status(store)
        self._reap(st, say)
        live = [n for n in st.nodes if n.state in ALIVE]
        slots = max(0, int(self.doc(store)["max_parallel"]) - len(live))
        todo = self._todo(st)
        if slots and todo:
            self._launch(store, todo[:slots], say)
        return st, bool(slots and todo), todo[slots:]

    def _reap(self, st: ArrayStatus, say: Say, everything: bool = False) -> None:
        """Remove the nodes that ended (powered off, terminated) and what is left of them, and nodes no
        job runs on (a `jobs run` interrupted between making a node and starting its job) once they are
        older than ORPHAN_AFTER_S."""
        used = {j.node for j in st.jobs}
        now = time.time()

        def orphan(n: Node) -> bool:
            created = jobs_ec2.created_at(n)
            return (jobs_ec2.node_key(n) not in used and isinstance(created, (int, float))
                    and now - created > ORPHAN_AFTER_S)

        gone = [n.index for n in st.nodes if everything or n.state not in ALIVE or orphan(n)]
        if gone and self.state.exists():
            get_provider(self.state.load().provider).destroy(self.state, gone, say)

    def _launch(self, store: ArrayStore, jobs: list[JobStatus], say: Say) -> None:
        from ..release.inject import inject
        from ..release.install import JobOptions

        prov = self.provider(store)
        rows = {r.name: r for r in self.rows(store)}
        doc = self.doc(store)
        say(f"starting {len(jobs)} job{'s' if len(jobs) != 1 else ''}: {', '.join(j.name for j in jobs)}")
        new = self._create(prov, [rows[j.name] for j in jobs], int(doc.get("lifetime", DEFAULT_LIFETIME_S)), say)
        every = prov.nodes(self.state)
        for n in new:
            for m in every:
                if m.index == n.index:
                    m.host_key = n.host_key
        access.write_access_files(self.state, every)
        failed: dict[str, str] = {}
        try:
            sshexec.wait_ready(self.state, new)
        except VcaError as exc:
            prov.destroy(self.state, [n.index for n in new], say)
            raise VcaError(f"job nodes did not come up: {exc.message}") from None

        def start(job: JobStatus, node: Node) -> str | None:
            """Record the launch, then give the node the package and its job; why it failed, or None."""
            row = rows[job.name]
            attempt = job.attempt + 1
            if job.state == "failed":
                store.delete_job_outputs(job.name)
            store.write_launch(job.name, attempt, {"node": jobs_ec2.node_key(node), "index": node.index,
                                                   "attempt": attempt, "instance_type": row.instance_type,
                                                   "at": time.time()})
            lifetime = (row.timeout or 0) + int(doc.get("lifetime", DEFAULT_LIFETIME_S))
            spec = {"job": row.name, "index": row.index, "attempt": attempt, "command": row.command,
                    "env": row.env, "timeout": row.timeout, "files": list(row.files),
                    "instance_type": row.instance_type, "upload_seconds": UPLOAD_SECONDS,
                    "hold_seconds": HOLD_S,
                    "setup": ".vca-job/setup" if (self.state.dir / "package/.vca-job/setup").exists() else None,
                    **store.presign(row.name, lifetime)}
            sent = sshexec.run_one(self.state, node, f'umask 077 && mkdir -p "$HOME/vca-job" && '
                                   f'cat > "$HOME/vca-job/spec-{attempt}.json"', timeout=60,
                                   stdin=json.dumps(spec).encode())
            if sent.rc != 0:
                return f"sending the job's spec failed: {(sent.stderr or '').strip()[-200:] or sent.rc}"
            env = {"VCA_JOB_NAME": row.name, "VCA_JOB_INDEX": str(row.index), "VCA_JOB_ATTEMPT": str(attempt)}
            res = inject(self.state, [node], [node], self.state.dir / "package", JobOptions(env=env))
            if res.ok:
                return None
            return res.nodes[node.name].message if node.name in res.nodes else "inject failed"

        # One ssh session per node, all at once (each node gets its own job): jobs[i] on new[i], of its type.
        with ThreadPoolExecutor(max_workers=min(16, len(new))) as pool:
            whys = list(pool.map(start, jobs, new))
        for node, why in zip(new, whys, strict=True):
            if why is not None:
                failed[node.name] = why
        if failed:  # the jobs show as lost and are retried
            prov.destroy(self.state, [n.index for n in new if n.name in failed], say)
        if failed:
            say(RemoteFailed.naming("starting a job", failed, len(new)).message)

    def _create(self, prov: Provider, rows: list[jobspec.JobRow], lifetime: int, say: Say) -> list[Node]:
        """One node per row, in the rows' order: lab nodes at once; EC2 instances one launch per instance
        type and lifetime (each row's type; vca:expires-at from its timeout)."""
        if not isinstance(prov, Configurable):
            return prov.create(self.state, len(rows), say, "worker")
        groups: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault((r.instance_type, jobs_ec2.lifetime(r.timeout, lifetime)), []).append(i)
        out: list[Node | None] = [None] * len(rows)
        stored = self.state.load().settings
        for (itype, life), idx in groups.items():
            prov.prepare(stored, {"instance_type": itype, "worker_instance_type": itype, "role": "worker",
                                  "lifetime": life, "shutdown_behavior": "terminate"}, creating=False)
            made = prov.create(self.state, len(idx), say, "worker")
            for i, n in zip(idx, sorted(made, key=lambda n: n.index), strict=True):
                out[i] = n
        return [n for n in out if n is not None]

    def _nodes(self, prov: Provider, store: ArrayStore) -> list[Node]:
        if prov.name == "ec2" and not self.state.exists():  # status from another machine
            return jobs_ec2.nodes_elsewhere(self.state, dict(self.doc(store).get("ec2") or {}))
        return prov.nodes(self.state)

    # -- reading ---------------------------------------------------------------------------------
    def status(self, store: ArrayStore | None = None) -> ArrayStatus:
        """Every job's state, from the bucket and the provider's listing (nodes first: a node seen gone
        has uploaded before it went, so the bucket read after it holds its result)."""
        store = store or self.store()
        prov = self.provider(store)
        nodes = self._nodes(prov, store)
        alive = {jobs_ec2.node_key(n) for n in nodes if n.state in ALIVE}
        rows = self.rows(store)
        objects = store.jobs([r.name for r in rows])
        return ArrayStatus(self.name, store.bucket, [job_status(r, objects[r.name], alive) for r in rows], nodes)

    def retry(self, say: Say = _quiet, *, failed: bool = False, poll: float = 1.0,
              timeout: float = 3600.0) -> list[str]:
        """Start the lost jobs again (with ``failed``, failed ones too), past the retry limit, as nodes free
        (never more than the array's max-parallel at once); returns once they all started."""
        st = self.status()
        self._again = {j.name: j.attempt for j in st.jobs if j.state == "lost" or (failed and j.state == "failed")}
        if self._again:
            self.follow(until="started", say=say, poll=poll, timeout=timeout)
        return sorted(self._again)

    def fetch(self, local: str | Path, *, overwrite: bool = False) -> FetchResult:
        """Every finished job's files into LOCAL/<job>/, each checked against the sha256 and size of the
        job's manifest, recorded in LOCAL/vca-manifest.json (collect's layout and overwrite rule)."""
        from ..collect.errors import CollectError
        from ..collect.layout import Layout, make_parents, place
        from ..collect.manifest import record, utc_now

        layout = Layout.make(local)
        layout.prepare()
        store = self.store()
        st = self.status(store)
        objects = store.jobs([j.name for j in st.jobs])
        out = FetchResult(layout.local)
        entries: list[dict[str, Any]] = []
        errors: dict[str, dict[str, Any]] = {}
        for j in st.jobs:
            man = objects[j.name].manifest
            if j.state not in FINAL or man is None:
                out.missing.append(j.name)
                continue
            files = {**man["files"], "manifest.json": None}
            try:
                for rel, want in files.items():
                    key = store.prefix(j.name) + rel
                    staging = Path(tempfile.mkdtemp(prefix=".vca-jobs-", dir=layout.local))
                    try:
                        tmp = staging / "data"
                        sha, size = hashlib.sha256(), 0
                        with open(tmp, "wb") as f:
                            for chunk in store.download(key):
                                sha.update(chunk)
                                size += len(chunk)
                                f.write(chunk)
                        if want is not None and (size != want["size"] or sha.hexdigest() != want["sha256"]):
                            raise CollectError(f"s3://{store.bucket}/{key}: {size} bytes, sha256 "
                                               f"{sha.hexdigest()[:12]}..., the job's manifest says "
                                               f"{want['size']} bytes, {want['sha256'][:12]}...")
                        dest = layout.local / j.name / rel
                        make_parents(str(dest.parent), str(layout.local))
                        place(str(tmp), str(dest), sha.hexdigest(), size, overwrite)
                    finally:
                        shutil.rmtree(staging, ignore_errors=True)
                    out.files += 1
                    out.bytes += size
                    entries.append({"node": j.name, "node_index": j.index, "hostname": j.node,
                                    "instance_id": None, "remote_path": f"s3://{store.bucket}/{key}",
                                    "local_path": f"{j.name}/{rel}", "size": size, "sha256": sha.hexdigest(),
                                    "collected_at": utc_now()})
                out.jobs.append(j.name)
            except CollectError as exc:
                errors[j.name] = {"node_index": j.index, "remote": f"s3://{store.bucket}/{store.prefix(j.name)}",
                                  "error": exc.message}
        record(layout, f"s3://{store.bucket}/{store.root}", entries, errors, out.jobs)
        if errors:
            raise RemoteFailed.naming("fetch", {k: v["error"] for k, v in errors.items()}, len(st.jobs),
                                      noun="jobs")
        return out

    def cancel(self, say: Say = _quiet) -> list[Node]:
        """Remove every node of the array (running jobs end unfinished) and forget it here; what the
        jobs uploaded stays in the bucket."""
        if not self.state.exists():
            raise ClusterNotFound(f"no job array '{self.name}' here", "see `vca jobs list`")
        prov = get_provider(self.state.load().provider)
        removed = prov.destroy(self.state, None, say)
        left = [n for n in prov.nodes(self.state) if n.state not in ("terminated",)]
        if left:
            raise VcaError(f"{len(left)} node{'s' if len(left) != 1 else ''} of job array '{self.name}' remain",
                           f"run `vca jobs cancel {self.name}` again")
        self._forget()
        return removed

    def _forget(self) -> None:
        shutil.rmtree(self.state.dir, ignore_errors=True)


def check_csv(csv_path: str | Path, provider: str = "local") -> list[jobspec.JobRow]:
    """The rows of a job CSV, checked as `jobs run` checks them (instance types against ``provider``:
    the lab's known list, or EC2's own DescribeInstanceTypes in the region); nothing is made."""
    get_provider(provider)  # an unknown provider is refused first
    return jobspec.read_file(Path(csv_path), check_type=_type_checker(provider))


def list_arrays(home: Path | None = None) -> list[dict[str, Any]]:
    """The job arrays this VCA_HOME started (and has not cancelled): name, bucket, when."""
    out = []
    for name in list_clusters(home):
        arr = JobArray(name, home)
        local = arr._local()
        if local:
            out.append({"name": name, "bucket": local.get("bucket"), "created_at": local.get("created_at")})
    return out


def _check_file(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UsageError(f"{what} {p} is not a file")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{what} {p} is not readable")
    return p


def _type_checker(provider: str) -> Callable[[list[str]], dict[str, str]]:
    if provider == "ec2":
        return _ec2_types
    from .instance_types import known

    return lambda types: jobspec.type_checker(types, known)


def _ec2_types(types: list[str]) -> dict[str, str]:
    """EC2 itself says which types exist in the region (the provider's own check)."""
    from ..providers.ec2 import api as ec2_api
    from ..providers.ec2.settings import default_region

    region = default_region()
    ec2 = ec2_api.client(region)
    refused: dict[str, str] = {}
    from botocore.exceptions import ClientError

    with ec2_api.aws_errors(region):
        for t in types:
            found: dict[str, Any] = {}
            if _valid_type_name(t):
                try:
                    found = ec2.describe_instance_types(InstanceTypes=[t])
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "InvalidInstanceType":
                        raise
            if not found.get("InstanceTypes"):
                refused[t] = f"instance type '{t}' does not exist in region {region}"
    return refused


def _valid_type_name(t: str) -> bool:
    return all(c.isalnum() or c in ".-" for c in t) and "." in t
