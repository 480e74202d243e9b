"""REMOTE as the node's shell reads it: base folder, pattern, prefix."""

from __future__ import annotations

import pytest

from vcloud_ansible.collect.remote_path import RemoteSpec
from vcloud_ansible.errors import UsageError


@pytest.mark.parametrize(("remote", "suffix", "base", "pattern", "prefix", "contents"), [
    ("out.txt", False, "release", "out.txt", ".", False),
    ("results", False, "release", "results", ".", False),
    ("results/", False, "release", "results", "results", True),
    (".", False, "release", ".", ".", True),
    ("logs/*.txt", False, "release", "logs/*.txt", "logs", False),
    ("a/b/*/c/*.txt", False, "release", "a/b/*/c/*.txt", "a/b", False),
    ("/var/log/syslog", False, "root", "var/log/syslog", "var/log", False),
    ("~/data", False, "home", "data", ".", False),
    ("~", False, "home", ".", ".", True),
    ("out.txt", True, "release", "out.txt", "out.txt", True),
    ("results", True, "release", "results", "results", True),
    ("out*.txt", True, "release", "out*.txt", ".", False),
])
def test_remote_spec(remote: str, suffix: bool, base: str, pattern: str, prefix: str, contents: bool) -> None:
    spec = RemoteSpec.parse(remote, suffix)
    assert (spec.base, spec.pattern, spec.prefix, spec.contents) == (base, pattern, prefix, contents)


@pytest.mark.parametrize("bad", ["", "  ", "a\nb", "a\0b"])
def test_remote_spec_refuses(bad: str) -> None:
    with pytest.raises(UsageError):
        RemoteSpec.parse(bad)
