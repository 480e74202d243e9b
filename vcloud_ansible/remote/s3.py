"""Packages through S3: uploaded once from the control machine, pulled by every node through a
presigned URL, so the control machine sends a release once instead of once per node and nodes hold
no credentials. Credentials and endpoint come from the standard AWS chain (AWS_ENDPOINT_URL too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ProviderError

URL_LIFETIME_S = 3600


def _client() -> Any:
    import boto3
    from botocore.config import Config

    from ..providers.ec2.api import client_config, configured_endpoint

    configured_endpoint("s3")  # one line when it is not a URL
    # Bounded like every AWS client of vca; an upload waits longer for each answer than a query.
    return boto3.client("s3", config=client_config(signature_version="s3v4").merge(
        Config(read_timeout=120)))


def publish(tarball: Path, bucket: str, key: str) -> str:
    """Upload ``tarball`` to s3://bucket/key unless it is there already; return a presigned GET URL."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    s3 = _client()
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
