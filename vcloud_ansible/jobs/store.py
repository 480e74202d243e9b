"""Where a job array lives in S3, read and written from the control machine.

    s3://BUCKET/ARRAY/.vca/array.json        the array: rows, provider, settings, limits (written by `jobs run`)
    s3://BUCKET/ARRAY/JOB/.vca/launch-N.json  attempt N of JOB started on node X (written before it starts)
    s3://BUCKET/ARRAY/JOB/.vca/state.json     the node's progress: setting up, running, uploading, done
    s3://BUCKET/ARRAY/JOB/stdout, stderr, result.json, results/...   the job's output (written by the node)
    s3://BUCKET/ARRAY/JOB/manifest.json       sha256 and size of each output file, written last

Everything `vca jobs status` needs is there and in the provider's own listing, so it works from any
machine with the same credentials. Nodes write only below their job's prefix, through a presigned POST
policy this module makes (they hold no credentials).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError, VcaError
from ..remote import s3

MAX_PRESIGN_S = 7 * 24 * 3600  # the longest S3 honours a SigV4 signature


@dataclass
class JobObjects:
    """What S3 holds for one job."""

    launches: dict[int, dict[str, Any]] = field(default_factory=dict)  # attempt -> launch record
    state: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    keys: dict[str, int] = field(default_factory=dict)  # rel -> size


class ArrayStore:
    def __init__(self, bucket: str, array: str, client: Any = None) -> None:
        self.bucket = bucket
        self.array = array
        self.client = client or s3.client()

    @property
    def root(self) -> str:
        return f"{self.array}/"

    def prefix(self, job: str) -> str:
        return f"{self.array}/{job}/"

    # -- the array -------------------------------------------------------------------------------
    def check_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise _error(exc, f"s3://{self.bucket}") from None

    def write_array(self, doc: dict[str, Any]) -> None:
        self._put(f"{self.root}.vca/array.json", doc)

    def read_array(self) -> dict[str, Any] | None:
        return self._get(f"{self.root}.vca/array.json")

    def write_launch(self, job: str, attempt: int, doc: dict[str, Any]) -> None:
        self._put(f"{self.prefix(job)}.vca/launch-{attempt}.json", doc)

    # -- what nodes wrote ------------------------------------------------------------------------
    def jobs(self, names: list[str]) -> dict[str, JobObjects]:
        """Every job's objects, from one listing of the array's prefix and a read of the small JSON ones."""
        out = {n: JobObjects() for n in names}
        for key, size in self._list(self.root):
            rel = key[len(self.root):]
            job, _, rest = rel.partition("/")
            if job not in out:
                continue
            o = out[job]
            o.keys[rest] = size
            if rest.startswith(".vca/launch-") and rest.endswith(".json"):
                num = rest[len(".vca/launch-"):-len(".json")]
                if num.isdigit():
                    o.launches[int(num)] = self._get(key) or {}
            elif rest == ".vca/state.json":
                o.state = self._get(key)
            elif rest == "result.json":
                o.result = self._get(key)
            elif rest == "manifest.json":
                o.manifest = self._get(key)
        return out

    def presign(self, job: str, seconds: int) -> dict[str, Any]:
        """A POST policy for keys below the job's prefix and a listing URL of that prefix, valid ``seconds``."""
        seconds = max(60, min(MAX_PRESIGN_S, seconds))
        prefix = self.prefix(job)
        post = self.client.generate_presigned_post(self.bucket, prefix + "${filename}",
                                                   Conditions=[["starts-with", "$key", prefix]],
                                                   ExpiresIn=seconds)
        listing = self.client.generate_presigned_url("list_objects_v2", Params={"Bucket": self.bucket,
                                                                               "Prefix": prefix},
                                                     ExpiresIn=seconds)
        return {"post": post, "list_url": listing, "prefix": prefix}

    def download(self, key: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        while chunk := body.read(1 << 20):
            yield chunk

    def delete_job_outputs(self, job: str) -> None:
        """Before a new attempt of a failed job: its old outputs go (its launch records stay)."""
        keys = [k for k, _ in self._list(self.prefix(job)) if "/.vca/launch-" not in k]
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket,
                                       Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})

    # -- plumbing --------------------------------------------------------------------------------
    def _list(self, prefix: str) -> list[tuple[str, int]]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return [(o["Key"], int(o.get("Size", 0))) for p in pages for o in p.get("Contents", [])]
        except Exception as exc:
            raise _error(exc, f"s3://{self.bucket}/{prefix}") from None

    def _put(self, key: str, doc: dict[str, Any]) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=(json.dumps(doc, indent=1) + "\n").encode())
        except Exception as exc:
            raise _error(exc, f"s3://{self.bucket}/{key}") from None

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise _error(exc, f"s3://{self.bucket}/{key}") from None
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _error(exc: Exception, where: str) -> VcaError:
    code = _code(exc)
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return VcaError("no AWS credentials for the job bucket",
                        "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    if code in ("NoSuchBucket", "404") and where.count("/") <= 2:
        return UsageError(f"no bucket {where}", "create it first, or give another with --bucket")
    text = " ".join(str(exc).split())[:200] or type(exc).__name__
    return VcaError(f"S3 failed at {where}: {text}")
