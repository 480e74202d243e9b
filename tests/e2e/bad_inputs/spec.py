"""Refused cluster spec files (`vca provision --spec`) whatever the provider: keys and types are checked
against the providers' declared settings before anything is made. Every error path is proved in
tests/unit/test_spec.py; these prove that the CLI refuses in one line and changes nothing."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case(
        id="spec-section-for-another-provider",
        argv=("-c", "badspec", "provision", "--spec", "{tmp}/cluster.yml"),
        words="section 'ec2' is for provider ec2, but the provider is local",
        files={"cluster.yml": "provider: local\nnodes: 2\nec2: {region: eu-west-1}\n"},
        doc="A spec whose settings section belongs to another provider than its own is refused, naming both.",
    ),
    Case(
        id="spec-setting-of-the-wrong-type",
        argv=("-c", "badspec", "provision", "--spec", "{tmp}/cluster.yml"),
        words="ec2.ssh_timeout must be a whole number, got 'soon'",
        files={"cluster.yml": "provider: ec2\nec2: {ssh_timeout: soon}\n"},
        doc="A provider setting in a spec file is typed like its flag; a wrong type names the key and the value.",
    ),
    Case(
        id="spec-unknown-setup-group",
        argv=("-c", "badspec", "provision", "--spec", "{tmp}/cluster.yml"),
        words="setup: unknown node role 'gpu': known: all, head, worker, dev",
        files={"cluster.yml": "nodes: 2\nsetup: {gpu: [cuda]}\n"},
        doc="Setup roles are named for all nodes or for one node role (head, worker, dev); anything else is "
            "refused.",
    ),
    Case(
        id="spec-nodes-by-role-not-yet",
        argv=("-c", "badspec", "provision", "--spec", "{tmp}/cluster.yml"),
        words="nodes by role (head: 1, dev: 2) cannot be provisioned from a spec file yet",
        files={"cluster.yml": "nodes: {head: 1, dev: 2}\n"},
        doc="Node counts by role other than one head and N workers are refused, not silently provisioned as "
            "a total with other roles.",
    ),
]
