"""Refused inputs of `vca collect`. A node folder under LOCAL that is a link, a glob whose matches are
links leaving the folder, a full or read-only LOCAL: those need links or mounts made first and are proven
in tests/e2e/test_collect.py."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case("collect-no-remote", ("collect",), "REMOTE is missing",
         doc="`collect` without REMOTE is refused with the usage."),
    Case("collect-empty-remote", ("collect", "", "{tmp}/res"), "REMOTE is missing",
         doc="An empty REMOTE (an unset shell variable) is refused before any node is asked."),
    Case("collect-local-is-a-file", ("collect", "out.txt", "{tmp}/afile"), "is a file",
         files={"afile": "mine\n"},
         doc="A LOCAL that is a file is refused; the file is untouched."),
    Case("collect-suffix-needs-local", ("collect", "out*", "--suffix"), "--suffix needs LOCAL here",
         doc="`--suffix` with a glob and no LOCAL is refused (no name to number)."),
    Case("collect-s3-with-local", ("collect", "--from-s3", "s3://bucket/run1", "{tmp}/a", "{tmp}/b"),
         "with --from-s3 give only LOCAL",
         doc="`--from-s3` with both REMOTE and LOCAL is refused."),
    Case("collect-s3-bad-url", ("collect", "--from-s3", "s3://UPPER/x", "{tmp}/res"), "bad S3 URL",
         doc="An S3 URL that is not s3://bucket/prefix with a valid bucket name is refused."),
    Case("collect-retry-without-manifest",
         ("-c", "{cluster}", "collect", "out.txt", "{tmp}/res", "--retry-failed"), "no manifest at",
         needs="lab",
         doc="`--retry-failed` into a LOCAL that holds no manifest is refused; nothing is collected."),
]
