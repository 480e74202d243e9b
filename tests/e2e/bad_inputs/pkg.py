"""Refused inputs of mkpkg and of inject's -e / --mem (issue 9, defects 1 and 6). The tarball whose
links lead out through an earlier link is in tests/unit/test_package.py (it needs a built tarball)."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case("mkpkg-output-dev-null", ("mkpkg", "{pkg}", "-o", "/dev/null"), "not a regular file",
         doc="`vca mkpkg DIR -o /dev/null` as root: refused, /dev/null stays a device (it used to become a "
             "regular file)."),
    Case("mkpkg-output-dev-null-force", ("mkpkg", "{pkg}", "-o", "/dev/null", "--force"), "not a regular file",
         doc="--force replaces regular files only: a device is refused even then."),
    Case("mkpkg-output-launch-script", ("mkpkg", "{pkg}", "-o", "{pkg}/vcloud-launch"),
         "inside the package folder",
         doc="`cd pkg && vca mkpkg . -o vcloud-launch`: refused, the launch script is untouched (it used to "
             "become the tarball)."),
    Case("mkpkg-output-inside-package", ("mkpkg", "{pkg}", "-o", "{pkg}/new.tar.gz"), "inside the package folder",
         doc="A new output file inside the folder being packed is refused (it would be packed next time)."),
    Case("mkpkg-output-existing-file", ("mkpkg", "{pkg}", "-o", "{tmp}/old.tar.gz"), "already exists",
         files={"old.tar.gz": "precious"},
         doc="An existing file with other bytes is replaced only with --force."),
    Case("mkpkg-output-read-only-folder", ("mkpkg", "{pkg}", "-o", "/sys/hello.tar.gz"), "cannot write in /sys",
         exit_code=3, doc="A folder nobody may write to (/sys, even as root) gives one line, not an OSError."),
    Case("inject-env-name-not-exportable", ("-c", "{cluster}", "inject", "{pkg}", "-e", "ÜNI=x"),
         "cannot be exported", needs="lab",
         doc="`-e ÜNI=x` is refused (the node's shell used to drop it silently)."),
    Case("inject-env-name-starts-with-digit", ("-c", "{cluster}", "inject", "{pkg}", "-e", "1A=x"),
         "cannot be exported", needs="lab", doc="A name starting with a digit is refused."),
    Case("inject-env-name-reserved", ("-c", "{cluster}", "inject", "{pkg}", "-e", "VCA_NODE_INDEX=7"),
         "reserved", needs="lab", doc="VCA_* names belong to the node contract: refused."),
    Case("inject-env-no-equals", ("-c", "{cluster}", "inject", "{pkg}", "-e", "ROUNDS"), "KEY=VALUE",
         needs="lab", doc="`-e NAME` without a value is refused."),
    Case("inject-mem-under-1k", ("-c", "{cluster}", "inject", "{pkg}", "--mem", "100"), "under 1 KiB",
         needs="lab", doc="`--mem 100` (bytes) is 0 KiB, which meant no limit: refused."),
    Case("inject-mem-zero", ("-c", "{cluster}", "inject", "{pkg}", "--mem", "0"), "under 1 KiB", needs="lab",
         doc="`--mem 0` is refused (leave --mem out for no limit)."),
]
