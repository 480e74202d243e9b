"""What every AWS client vca makes shares (EC2 for the ec2 provider, S3 for packages and collect): the
endpoint from the AWS chain, checked to be a URL, and bounded timeouts and attempts, so that a frozen
or mistyped endpoint is one clear line instead of a hang or a traceback."""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from ..errors import UsageError

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
MAX_ATTEMPTS = 3  # in all, the first one included (throttled calls are retried too)


def client_config(**extra: Any) -> Any:
    """The botocore config of every AWS client vca makes: bounded timeouts and attempts."""
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                  connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT, **extra)


def configured_endpoint(service: str = "ec2") -> str | None:
    """The endpoint the environment names for ``service`` (AWS_ENDPOINT_URL_<SERVICE>, else
    AWS_ENDPOINT_URL); None for AWS itself. Raises UsageError when it is not an http(s) URL."""
    for name in (f"AWS_ENDPOINT_URL_{service.upper()}", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name)
        if value is None:
            continue
        check_endpoint(value, name, service.upper())
        return value
    return None


def check_endpoint(value: str, source: str = "AWS_ENDPOINT_URL", service: str = "EC2") -> None:
    try:
        url = urllib.parse.urlsplit(value)
        ok = url.scheme in ("http", "https") and bool(url.hostname) and (url.port is None or url.port > 0)
    except ValueError:  # a bad port or address in it
        ok = False
    if not ok:
        raise UsageError(f"the {service} endpoint '{value}' is not a URL",
                         f"{source} must look like https://{service.lower()}.example.com or "
                         "http://127.0.0.1:5000")
