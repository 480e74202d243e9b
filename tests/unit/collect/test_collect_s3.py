"""``--from-s3``: S3 URLs and how keys map to local paths."""

from __future__ import annotations

import pytest

from vcloud_ansible.collect.errors import UnsafePath
from vcloud_ansible.collect.s3 import S3Url, key_rel, node_of
from vcloud_ansible.errors import UsageError


def test_s3_urls_and_keys() -> None:
    assert S3Url.parse("s3://bucket/run1") == S3Url("bucket", "run1/")
    assert S3Url.parse("s3://bucket") == S3Url("bucket", "")
    assert S3Url.parse("s3://bucket/a/b/") == S3Url("bucket", "a/b/")
    for bad in ("s3://", "s3:///x", "http://b/x", "s3://UP/x", "s3://a/x", "bucket/x"):
        with pytest.raises(UsageError):
            S3Url.parse(bad)
    assert key_rel("run1/c-0/out.txt", "run1/") == "c-0/out.txt"
    assert key_rel("run1/dir/", "run1/") is None
    for bad in ("run1/../x", "run1/a//b", "run1/./x", "run1/a\\..\\x"):
        with pytest.raises(UnsafePath):
            key_rel(bad, "run1/")
    assert node_of("demo-12/out.txt") == ("demo-12", 12)
    assert node_of("summary.csv") == (None, None) and node_of("notanode/x") == (None, None)
