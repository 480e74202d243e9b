"""Refused inputs of the storage and first-boot settings: the init script file and the node role a
storage role is named for. (Bucket names and disk lists are role variables: the s3fs and scratch
roles refuse them on the node before changing anything; see tests/e2e/test_storage.py.)"""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case("init-script-missing", ("provision", "1", "--init-script", "{tmp}/nope.sh"), "init script not found: ",
         doc="An init script that does not exist is refused before anything is made."),
    Case("init-script-folder", ("provision", "1", "--init-script", "{tmp}"), "init script is not a file: ",
         doc="A folder given as the init script is refused."),
    Case("init-script-empty", ("provision", "1", "--init-script", "{tmp}/empty.sh"), "init script is empty: ",
         files={"empty.sh": ""}, doc="An empty init script (a truncated copy) is refused."),
    Case("storage-role-unknown-node-role", ("provision", "1", "--setup", "scratch@workers"),
         "--on must be one of all, head, worker, dev, got 'workers'",
         doc="A storage role named for a node role that does not exist is refused before anything is made."),
    Case("storage-setup-unknown-node-role", ("-c", "{cluster}", "setup", "--add", "s3fs", "--on", "storage"),
         "--on must be one of all, head, worker, dev, got 'storage'", needs="lab",
         doc="`vca setup --add s3fs --on` a node role that does not exist is refused; nothing is named."),
]
