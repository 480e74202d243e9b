"""S3 for vca: the one place its S3 clients are made, and packages published through a bucket.

Packages: uploaded once from the control machine, pulled by every node through a presigned URL, so the
control machine sends a release once instead of once per node and nodes hold no credentials. The
collect side (``vca collect --from-s3``, vcloud_ansible.collect.s3) takes its client from here too.
Credentials and endpoint come from the standard AWS chain (AWS_ENDPOINT_URL too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import EnvironmentProblem, ProviderError

URL_LIFETIME_S = 3600
# Seconds to wait for each answer: an upload or a download waits longer than a query (the EC2 clients'
# bound).
READ_TIMEOUT_S = 120


def client() -> Any:
    """An S3 client, the only way vca makes one: the endpoint (AWS_ENDPOINT_URL_S3, else
    AWS_ENDPOINT_URL) must be a URL, else one line says so; connect timeout, read timeout and attempts
    are bounded like every AWS client of vca; s3v4 signatures (presigned URLs need them)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise EnvironmentProblem("S3 needs boto3", "pip install boto3") from None

    from .aws import client_config, configured_endpoint

    configured_endpoint("s3")
    # A session per client: boto3's default session is not safe to share between threads.
    return boto3.session.Session().client("s3", config=client_config(signature_version="s3v4").merge(
        Config(read_timeout=READ_TIMEOUT_S)))


def publish(tarball: Path, bucket: str, key: str) -> str:
    """Upload ``tarball`` to s3://bucket/key unless it is there already; return a presigned GET URL."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    s3 = client()
    try:
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            present = head.get("ContentLength") == tarball.stat().st_size
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            present = False
        if not present:
            s3.upload_file(str(tarball), bucket, key)
        url: str = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                             ExpiresIn=URL_LIFETIME_S)
        return url
    except NoCredentialsError:
        raise ProviderError("no AWS credentials for the package bucket",
                            "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
    except (BotoCoreError, ClientError) as exc:
        raise ProviderError(f"uploading the package to s3://{bucket}/{key} failed: {exc}",
                            "check the bucket name and your access to it") from None
