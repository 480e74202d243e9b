"""The one S3 client factory (vcloud_ansible.remote.s3.client), used by the package bucket and by
``vca collect --from-s3``: the endpoint is checked, timeouts and attempts are bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcloud_ansible.collect.run import collect_from_s3
from vcloud_ansible.errors import UsageError
from vcloud_ansible.remote import s3


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


def test_client_is_bounded_and_signs_v4(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    config = s3.client().meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, s3.READ_TIMEOUT_S)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert config.signature_version == "s3v4"


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_an_endpoint_that_is_not_a_url_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   variable: str) -> None:
    monkeypatch.setenv(variable, "localhost:5000")
    with pytest.raises(UsageError, match="the S3 endpoint 'localhost:5000' is not a URL") as info:
        s3.client()
    assert variable in (info.value.hint or "")
    # --from-s3 takes the same client: the same line, before anything is listed
    with pytest.raises(UsageError, match="is not a URL"):
        collect_from_s3("s3://bucket/run1", tmp_path / "res")
