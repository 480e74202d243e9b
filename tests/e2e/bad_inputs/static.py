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
        id="static-where-bad-capability",
        argv=("exec", "--where", "re dis", "--", "true"),
        words="a capability is a name",
        doc="--where takes capability names (letters, digits, _), as hosts declare them.",
    ),
]
