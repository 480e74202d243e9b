"""Refused static hosts (`vca create NAME --static HOST`) and static clusters: the host text is checked
before any host is contacted; an unreachable host is named and nothing is installed on any host (the
cluster is not created). Parsing is proved in tests/unit/providers/test_static_hosts.py."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case(
        id="static-malformed-host",
        argv=("create", "badstatic", "--static", "ops@"),
        words="malformed static host 'ops@'",
        doc="A host that is not host, user@host:port, [v6]:port or a JSON object is refused before any host is "
            "contacted.",
    ),
    Case(
        id="static-bad-port",
        argv=("create", "badstatic", "--static", "10.0.0.5:70000"),
        words="invalid port '70000'",
        doc="A port outside 1-65535 is refused, naming the host as given.",
    ),
    Case(
        id="static-duplicate-host",
        argv=("create", "badstatic", "--static", "10.0.0.5", "--static", "root@10.0.0.5:22"),
        words="duplicate static host 10.0.0.5:22",
        doc="The same host (address and port) given twice, in any spelling, is refused.",
    ),
    Case(
        id="static-bad-json",
        argv=("create", "badstatic", "--static", '{"host": "10.0.0.5", "user": }'),
        words="is not valid JSON",
        doc="A host given as a JSON object that does not parse is refused with the parser's reason.",
    ),
    Case(
        id="static-json-unknown-key",
        argv=("create", "badstatic", "--static", '{"host": "10.0.0.5", "gpus": 2}'),
        words="unknown key gpus: known: host, user, port, identity, work, scratch, capabilities, role",
        doc="A per-host setting vca does not know is refused, naming the keys it knows.",
    ),
    Case(
        id="static-unreachable-host",
        argv=("create", "badstatic", "--static", "127.0.0.1:1"),
        words="not reachable over SSH: root@127.0.0.1:1",
        doc="A host that does not answer SSH is named; nothing is installed on any host and no cluster is kept.",
    ),
    Case(
        id="static-two-heads",
        argv=("create", "badstatic", "--static", '{"host": "a1", "role": "head"}',
              "--static", '{"host": "a2", "role": "head"}'),
        words="static hosts name 2 heads",
        doc="More than one head among the hosts is refused before any is contacted.",
    ),
    Case(
        id="static-provision-refused",
        argv=("-c", "badstatic", "provision", "--provider", "static", "--host", "10.0.0.5"),
        words="provider static makes no machines",
        doc="`vca provision` cannot make static hosts; it points at `vca create NAME --static HOST`.",
    ),
    Case(
        id="static-where-bad-capability",
        argv=("exec", "--where", "re dis", "--", "true"),
        words="a capability is a name",
        doc="--where takes capability names (letters, digits, _), as hosts declare them.",
    ),
]

# `vca up SPEC`: the spec is read and checked before the cluster is looked at; errors name the key's line.
CASES += [
    Case(
        id="up-unknown-spec-key",
        argv=("-c", "badup", "up", "{tmp}/vca.yml"),
        words="vca.yml line 3: unknown key replicas",
        files={"vca.yml": "provider: local\nnodes: 2\nreplicas: 3\n"},
        doc="A key the spec does not know is refused with its line, naming the keys it knows; nothing is made.",
    ),
    Case(
        id="up-wrong-type",
        argv=("-c", "badup", "up", "{tmp}/vca.yml"),
        words="vca.yml line 2: 'nodes' must be a whole number >= 1",
        files={"vca.yml": "provider: local\nnodes: many\n"},
        doc="A value of the wrong type is refused with the key's line.",
    ),
    Case(
        id="up-bad-service",
        argv=("-c", "badup", "up", "{tmp}/vca.yml", "--plan"),
        words="line 5: unknown key services[0].replicas",
        files={"vca.yml": "nodes: 1\nservices:\n  - name: web\n    command: python3 -m http.server\n"
                          "    replicas: 2\n"},
        doc="A service with a key services do not have is refused with its line, even for --plan.",
    ),
    Case(
        id="up-static-spec-bad-host",
        argv=("-c", "badup", "up", "{tmp}/vca.yml"),
        words="static.hosts: static host {\"host\": \"10.0.0.5\", \"gpus\": 2}: unknown key gpus",
        files={"vca.yml": "provider: static\nstatic:\n  hosts:\n    - {host: 10.0.0.5, gpus: 2}\n"},
        doc="A static host in a spec file is checked like one on the command line (unknown per-host keys refused).",
    ),
    Case(
        id="up-no-node-count",
        argv=("-c", "badup", "up", "{tmp}/vca.yml", "--plan"),
        words="gives no node count",
        files={"vca.yml": "provider: local\n"},
        doc="`vca up` needs to know how many nodes to converge on; a spec without `nodes` is refused.",
    ),
]
CASES += [
    Case(
        id="up-role-without-its-required-settings",
        argv=("-c", "badup", "up", "{tmp}/vca.yml", "--plan"),
        words="setup role needs_it (on all nodes) needs needs_it_url, and nothing gives it",
        files={"vca.yml": "nodes: 1\nsetup: {all: [needs_it]}\n",
               "roles/needs_it/tasks/main.yml": "---\n- name: Nothing\n  ansible.builtin.debug:\n    msg: x\n",
               "roles/needs_it/meta/argument_specs.yml":
                   "---\nargument_specs:\n  main:\n    options:\n      needs_it_url:\n        type: str\n"
                   "        required: true\n        description: Where.\n"},
        env={"ANSIBLE_ROLES_PATH": "{tmp}/roles"},
        doc="A setup role whose required option (meta/argument_specs.yml) has no value in its defaults or "
            "playbooks/group_vars is refused before any node is made, naming the option.",
    ),
]
