"""--where reaches every command that takes --node through the one shared option."""

from __future__ import annotations

import click
from click.testing import CliRunner

from vcloud_ansible.cli.context import node_option, parse_indexes
from vcloud_ansible.cli.main import COMMANDS, cli
from vcloud_ansible.node import NodeRefs


def test_where_joins_the_node_selection() -> None:
    seen: list[NodeRefs] = []

    @click.command()
    @node_option(help="nodes")
    def cmd(nodes: tuple[str, ...]) -> None:
        seen.append(parse_indexes(nodes))

    assert CliRunner().invoke(cmd, ["--where", "redis,gpu", "-w", "redis", "-n", "0-2"]).exit_code == 0
    assert seen[-1] == NodeRefs([(0, 2)], [], ["redis", "gpu"])
    res = CliRunner().invoke(cmd, ["--where", "re dis"])
    assert res.exit_code == 2 and "a capability is a name" in res.output


def test_every_command_with_node_has_where() -> None:
    with_node = []
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        opts = {o for p in command.params for o in getattr(p, "opts", [])}
        if "--node" in opts:
            with_node.append(name)
            assert "--where" in opts, name
    assert {"exec", "inject", "collect", "put", "setup", "stop", "wait", "power"} <= set(with_node)
