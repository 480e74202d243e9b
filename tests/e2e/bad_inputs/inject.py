"""Refused inputs of inject (and the commands that share its cluster lock)."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case("inject-same-release-other-settings", ("-c", "{cluster}", "inject", "{pkg}", "-e", "GREETING=changed"),
         "with other settings (-e/--procs/--mem/--tmux): nothing changed", exit_code=1, needs="lab",
         doc="Re-injecting the release a node already ran, with new -e and no --restart, used to say "
             "'job started on 0' with exit 0; now it says nothing changed and to use --restart, exit 1."),
    Case("inject-same-release-other-procs", ("-c", "{cluster}", "inject", "{pkg}", "--procs", "3"),
         "use --restart to apply them", exit_code=1, needs="lab",
         doc="The same with a new --procs: refused in one line, the job left as it was."),
    Case("inject-lock-wait-not-a-number", ("-c", "{cluster}", "inject", "{pkg}"), "VCA_LOCK_WAIT must be a number",
         needs="lab", env={"VCA_LOCK_WAIT": "soon"},
         doc="A VCA_LOCK_WAIT (how long to wait for another command on the cluster) that is not a number "
             "is refused before the nodes are touched."),
]
