"""setup: the setup stage on demand, and the setup roles named for each node role."""

from __future__ import annotations

import json

import click
from rich.table import Table

from ..errors import UsageError
from .context import App, node_option, parse_indexes, pass_app


@click.command()
@node_option(metavar="N",
              help="Only these nodes: index, list or range (1,3 or 2-5), name (<cluster>-2), role (head, dev, "
                   "workers) or address; repeatable. Default: every node.")
@click.option("--add", "add", default=None, metavar="ROLE",
              help="Name ROLE (a name on Ansible's roles path, or a path to a role folder), then apply it.")
@click.option("--remove", "remove", default=None, metavar="ROLE",
              help="Stop naming ROLE; nothing is undone on the nodes.")
@click.option("--on", "on", default=None, metavar="all|head|worker|dev",
              help="The nodes --add or --remove is about, by node role. Default: all (--add); wherever it "
                   "is named (--remove).")
@click.option("--list", "as_list", is_flag=True, help="Show the setup roles named for each node role.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the roles (--list) or each node's outcome.")
@pass_app
def setup(app: App, nodes: tuple[str, ...], add: str | None, remove: str | None, on: str | None, as_list: bool,
          as_json: bool) -> None:
    """Apply the setup roles: Ansible roles named per node role, applied after nodes accept SSH.

    Every node gets the roles named on `all`, then those named on its own node role (head, worker,
    dev), in the order they were named. `vca provision` applies them to new nodes; `vca setup`
    applies them again (roles are idempotent: nothing changes on a node already set up) and retries
    after a failure. Variables for the roles: playbooks/group_vars/{all,head,workers,dev}.yml or the
    roles' defaults.

    \b
      vca setup --add ./my_role                 # name a role for every node and apply it
      vca setup --add toolchain --on dev        # a role from the roles path, on dev nodes only
      vca setup                                 # apply every named role to every node
      vca setup --node 3                        # ... to node 3 only
      vca setup --remove toolchain              # forget it (the nodes keep what it did)
      vca setup --list [--json]
    """
    if [add is not None, remove is not None, as_list].count(True) > 1:
        raise UsageError("give one of --add, --remove and --list")
    if on is not None and add is None and remove is None:
        raise UsageError("--on goes with --add or --remove")
    if nodes and (remove is not None or as_list):
        raise UsageError("--node goes with applying the roles (plain `vca setup` or --add)")
    cluster = app.cluster()
    if as_list:
        _list(app, cluster.setup_roles(), as_json)
        return
    if remove is not None:
        left = cluster.forget_setup_role(remove, on)
        app.say(f"no longer naming setup role {remove} on {', '.join(left)}; nothing is undone on the nodes")
        return
    run = cluster.setup(parse_indexes(nodes) or None, add=add, on=on or "all", console=app.err,
                        verbose=app.verbose)
    from ..cluster import index_ranges

    if as_json:
        hosts = run.result.hosts if run.result else {}
        app.out.print_json(json.dumps({
            "nodes": [n.index for n in run.nodes],
            "hosts": {h: {"ok": o.ok, "changed": o.changed, "failed": o.failed, "unreachable": o.unreachable,
                          "skipped": o.skipped} for h, o in hosts.items()},
        }))
    where = f" (on {on or 'all'})" if add is not None else ""
    if not run.nodes:
        named = any(cluster.setup_roles().values())
        app.say(f"named setup role {add}{where}; no node gets it yet: new nodes will" if add is not None
                else "no node gets a setup role: nothing to apply" if named
                else "no setup roles named: nothing to apply; add one with `vca setup --add ROLE`")
        return
    app.say(f"{'named ' + add + where + ' and ' if add is not None else ''}applied the setup roles on "
            f"node{'s' if len(run.nodes) != 1 else ''} {index_ranges([n.index for n in run.nodes])}: "
            f"{run.changed} task{'s' if run.changed != 1 else ''} changed something")


def _list(app: App, roles: dict[str, list[str]], as_json: bool) -> None:
    if as_json:
        app.out.print_json(json.dumps(roles))
        return
    if not any(roles.values()):
        app.say("no setup roles named; add one with `vca setup --add ROLE [--on all|head|worker|dev]`")
        return
    table = Table("on", "role", box=None, pad_edge=False)
    for on, names in roles.items():
        for name in names:
            table.add_row(on, name)
    app.out.print(table)
