from __future__ import annotations

import click
import pytest

from vcloud_ansible.cli.context import parse_indexes
from vcloud_ansible.cli.run import parse_extravars
from vcloud_ansible.cluster import format_uptime, index_ranges
from vcloud_ansible.errors import UsageError


def test_parse_indexes() -> None:
    assert parse_indexes(("1", "3,4", "6-8")) == [1, 3, 4, 6, 7, 8]
    for bad in ("-1", "x", "2-", "1.5"):
        with pytest.raises(click.UsageError, match="node index must be"):
            parse_indexes((bad,))


def test_parse_extravars() -> None:
    assert parse_extravars(("pkg=examples/hello", "n=3", "flag=true", "empty=", "s=a=b")) == {
        "pkg": "examples/hello", "n": 3, "flag": True, "empty": "", "s": "a=b",
    }
    assert parse_extravars(("l=[1, 2]",)) == {"l": "[1, 2]"}  # only scalars are interpreted
    with pytest.raises(UsageError, match="expected key=value"):
        parse_extravars(("novalue",))
    with pytest.raises(UsageError):
        parse_extravars(("bad-key=1",))


def test_index_ranges_and_uptime() -> None:
    assert index_ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert index_ranges([]) == ""
    assert [format_uptime(x) for x in (None, 5, 65, 7322)] == ["-", "5s", "1m05s", "2h02m"]


def test_commands_load_lazily_and_all_resolve() -> None:
    import subprocess
    import sys

    import click

    from vcloud_ansible.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
    assert cli.get_command(ctx, "nosuch") is None
    # `vca status` must not pay for collect's or provisioning's imports
    probe = ("import sys, vcloud_ansible.cli.main, vcloud_ansible.cli.nodes; "
             "print(sorted(k for k in sys.modules if k.startswith('vcloud_ansible.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "vcloud_ansible.collect'" not in loaded and "vcloud_ansible.cli.lifecycle'" not in loaded, loaded
    assert "vcloud_ansible.cli.nodes'" in loaded
