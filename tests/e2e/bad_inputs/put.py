"""Refused inputs of `vca put`. A REMOTE that reaches ~/vca only through a link on the node is refused by
the node and proven in tests/e2e/test_first_hour.py."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case("put-missing-local", ("put", "{tmp}/nothing", "data/"), "does not exist",
         doc="`put` of a LOCAL that does not exist is refused before the cluster is looked at."),
    Case("put-local-not-a-file", ("put", "/dev/null", "data/"), "is not a file or folder",
         doc="`put` of a device (or another special file) is refused."),
    Case("put-empty-remote", ("put", "{pkg}", ""), "REMOTE is empty",
         doc="An empty REMOTE (an unset shell variable) is refused before any node is asked."),
    Case("put-into-vca", ("put", "{pkg}", "~/vca/current/"), "is inside ~/vca",
         doc="A REMOTE inside ~/vca (the releases, running or not, and their jobs) is refused; the nodes "
             "refuse it again after resolving links."),
]
