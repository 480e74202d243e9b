"""``vca collect --from-s3 s3://BUCKET/PREFIX LOCAL``: results that nodes wrote to S3.

The client is vcloud_ansible.remote.s3.client (the standard credential chain, AWS_ENDPOINT_URL checked,
bounded timeouts). Keys are listed page by page and downloaded in parallel (bounded); each object is
hashed while it streams to a staging file, checked against its size (and against its ETag when that is
a plain MD5, i.e. a single-part upload), then filed under the same overwrite rule and manifest as files from nodes.
A key's path below PREFIX becomes its local path; keys that would leave LOCAL are refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EnvironmentProblem, UsageError, VcaError
from ..remote import s3
from .checksum import file_sha256
from .errors import CollectError, UnsafePath
from .layout import Layout, make_parents, place
from .manifest import Manifest, record, utc_now

MAX_PARALLEL = 16  # downloads at once: enough to fill a link, few enough for any open-files limit
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NODE_DIR_RE = re.compile(r"^([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)-(\d+)$")
_MD5_ETAG_RE = re.compile(r'^"?([0-9a-f]{32})"?$')
_CHUNK = 1 << 20


@dataclass(frozen=True)
class S3Url:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> S3Url:
        m = re.fullmatch(r"s3://([^/]*)(?:/(.*))?", url or "")
        if not m or not _BUCKET_RE.match(m.group(1)):
            raise UsageError(f"bad S3 URL {url!r}", "give s3://BUCKET or s3://BUCKET/PREFIX")
        prefix = m.group(2) or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # a prefix names a folder: s3://b/run1 must not take run10/...
        return cls(m.group(1), prefix)

    def key_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def key_rel(key: str, prefix: str) -> str | None:
    """The local path of ``key`` below ``prefix``; None for folder markers (``.../``).
    Raises ``UnsafePath`` for keys that would land outside LOCAL."""
    if not key.startswith(prefix):
        raise UnsafePath(f"refused key {key!r}: it is not below {prefix!r}")
    rel = key[len(prefix):]
    if not rel or rel.endswith("/"):
        return None
    parts = rel.split("/")
    if "\0" in rel or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"refused key {key!r}: it would land outside LOCAL")
    return rel


def node_of(rel: str) -> tuple[str | None, int | None]:
    """``c-3/out.txt`` -> ("c-3", 3): a key below a ``<cluster>-<index>/`` folder names its node."""
    first, sep, _ = rel.partition("/")
    m = _NODE_DIR_RE.match(first) if sep else None
    return (first, int(m.group(2))) if m else (None, None)


@dataclass
class S3Outcome:
    entries: list[dict[str, Any]] = field(default_factory=list)
    new: int = 0
    replaced: int = 0
    same: int = 0
    kept: int = 0
    bytes: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # key -> why

    @property
    def files(self) -> int:
        return self.new + self.replaced + self.same + self.kept


def list_keys(client: Any, url: S3Url) -> list[dict[str, Any]]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=url.bucket, Prefix=url.prefix)
    return [obj for page in pages for obj in page.get("Contents", [])]


def collect_s3(url: S3Url, layout: Layout, *, overwrite: bool = False, client: Any = None,
               on_done: Callable[[int, int], None] | None = None) -> S3Outcome:
    """Download every object below ``url`` into ``layout.local`` and record them in the manifest."""
    if layout.suffix:
        raise UsageError("--suffix does not apply to --from-s3", "keys keep their folders below PREFIX")
    layout.prepare()
    client = client or s3.client()
    try:
        objects = list_keys(client, url)
    except Exception as exc:
        raise _aws_error(exc, url) from None
    manifest = Manifest.load(layout.manifest_path)
    out = S3Outcome()
    jobs: list[tuple[dict[str, Any], str]] = []
    for obj in objects:
        try:
            rel = key_rel(obj["Key"], url.prefix)
        except UnsafePath as exc:
            out.errors[obj["Key"]] = exc.message
            continue
        if rel is not None:
            jobs.append((obj, rel))
    done = 0

    def one(job: tuple[dict[str, Any], str]) -> tuple[str, str, dict[str, Any] | None, int]:
        obj, rel = job
        try:
            how, entry, size = _fetch_one(client, url, obj, rel, layout, manifest, overwrite)
            return obj["Key"], how, entry, size
        except CollectError as exc:
            return obj["Key"], "error", {"error": exc.message}, 0
        except Exception as exc:  # one bad object must not stop the others
            return obj["Key"], "error", {"error": f"{url.key_url(obj['Key'])}: {_short(exc)}"}, 0

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(jobs)))) as pool:
        for key, how, entry, size in pool.map(one, jobs):
            done += 1
            if on_done:
                on_done(done, len(jobs))
            if how == "error":
                out.errors[key] = str((entry or {}).get("error"))
                continue
            setattr(out, how, getattr(out, how) + 1)
            if how in ("new", "replaced"):
                out.bytes += size
            if entry is not None:
                out.entries.append(entry)
    failed = {"s3": {"node_index": None, "remote": url.key_url(url.prefix),
                     "error": f"{len(out.errors)} object(s) failed, e.g. {next(iter(out.errors.values()))}"}
              } if out.errors else {}
    record(layout, url.key_url(url.prefix), out.entries, failed, [] if out.errors else ["s3"])
    return out


def _fetch_one(client: Any, url: S3Url, obj: dict[str, Any], rel: str, layout: Layout, manifest: Manifest,
               overwrite: bool) -> tuple[str, dict[str, Any] | None, int]:
    dest = layout.local / rel
    etag = str(obj.get("ETag", "")).strip('"')
    size = int(obj.get("Size", 0))
    held = manifest.files.get(rel)
    if held and held.get("etag") == etag and held.get("size") == size and _holds(dest, held):
        return "kept", None, size  # unchanged since the last run: not downloaded again
    staging = Path(tempfile.mkdtemp(prefix=".vca-s3-", dir=layout.local))
    try:
        tmp = staging / "data"
        sha, md5, got = _download(client, url.bucket, obj["Key"], tmp)
        if got != size:
            raise CollectError(f"{url.key_url(obj['Key'])}: got {got} bytes, the listing said {size}")
        m = _MD5_ETAG_RE.match(etag)
        if m and m.group(1) != md5:
            raise CollectError(f"{url.key_url(obj['Key'])}: checksum mismatch (MD5 is not the ETag)")
        make_parents(str(dest.parent), str(layout.local))
        how = place(str(tmp), str(dest), sha, got, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    node, index = node_of(rel)
    entry = {"node": node, "node_index": index, "hostname": None, "instance_id": None,
             "remote_path": url.key_url(obj["Key"]), "local_path": rel, "size": got, "sha256": sha,
             "collected_at": utc_now(), "etag": etag}
    return how, entry, got


def _holds(path: Path, entry: dict[str, Any]) -> bool:
    with contextlib.suppress(OSError):
        st = path.lstat()
        return stat.S_ISREG(st.st_mode) and st.st_size == entry["size"] and file_sha256(path) == entry["sha256"]
    return False


def _download(client: Any, bucket: str, key: str, dest: Path) -> tuple[str, str, int]:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        while chunk := body.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            f.write(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.hexdigest(), size


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _aws_error(exc: Exception, url: S3Url) -> VcaError:
    name = type(exc).__name__
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return EnvironmentProblem("no AWS credentials found",
                                  "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    if code == "NoSuchBucket":
        return UsageError(f"no bucket '{url.bucket}'", "check the s3:// URL (and AWS_ENDPOINT_URL)")
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return VcaError(f"S3 refused listing s3://{url.bucket}/{url.prefix}: {code}")
    return VcaError(f"cannot list s3://{url.bucket}/{url.prefix}: {_short(exc)}")
