"""remove, resize, power: changing the shape of a cluster that exists."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import click

from ..errors import UsageError
from ..node import Node
from .context import App, node_option, parse_indexes, pass_app


def _confirm(app: App, yes: bool, verb: str, cluster: str) -> Callable[[list[Node]], None]:
    """Called with the nodes about to go: asks on a terminal; anywhere else it needs --yes."""

    def confirm(victims: list[Node]) -> None:
        if yes or not victims:
            return
        names = ", ".join(n.name for n in victims)
        if not sys.stdin.isatty():
            raise UsageError(f"{verb} removes {len(victims)} node{'s' if len(victims) != 1 else ''} of cluster "
                             f"'{cluster}' ({names}) and needs --yes when stdin is not a terminal",
                             f"run `vca {verb} ... --yes` once you are sure")
        click.confirm(f"Remove {names} from cluster '{cluster}'?", abort=True)

    return confirm


def _report(app: App, as_json: bool, removed: list[Node], added: list[Node], left: list[Node]) -> None:
    from ..cluster import index_ranges

    if as_json:
        click.echo(json.dumps({"removed": [n.index for n in removed], "added": [n.index for n in added],
                               "nodes": [n.index for n in left]}))
    if removed:
        have = index_ranges([n.index for n in left]) or "none"
        app.say(f"removed node{'s' if len(removed) != 1 else ''} {index_ranges(sorted(n.index for n in removed))} "
                f"({len(left)} node{'s' if len(left) != 1 else ''} left: {have})")
    if added:
        app.say(f"added node{'s' if len(added) != 1 else ''} {index_ranges([n.index for n in added])} "
                f"({len(left)} nodes in all)")


@click.command()
@click.argument("nodes", nargs=-1, metavar="[NODE...]")
@click.option("--workers", type=int, default=None, metavar="K",
              help="Remove the K highest-index workers whose job is not running (K above the worker count: "
                   "every worker, said so). Never the head.")
@click.option("--force", is_flag=True, help="Also remove nodes whose job is running.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@pass_app
def remove(app: App, nodes: tuple[str, ...], workers: int | None, force: bool, yes: bool, as_json: bool) -> None:
    """Remove nodes from the cluster, leaving nothing of them behind (as `vca teardown` does).

    NODE: an index, list or range (3,5 or 2-4), a name (<cluster>-3), a role (head, dev, workers) or an
    address. The nodes left get the new node list (/etc/vca/cluster.json, hostfile, /etc/hosts).
    Nodes running a job go only with --force.

    \b
      vca remove 3 5 --yes
      vca remove --workers 2 --yes     # the 2 highest-index idle workers
      vca remove --workers 99 --force --yes   # every worker, the head stays
    """
    cluster = app.cluster()
    if nodes and workers is not None:
        raise UsageError("name the nodes to remove, or give --workers K (not both)")
    refs = parse_indexes(nodes) if nodes else None
    result = cluster.remove(refs, workers=workers, force=force, say=app.say,
                            confirm=_confirm(app, yes, "remove", cluster.name))
    _report(app, as_json, result.removed, [], result.nodes)


@click.command()
@click.option("--total", type=int, required=True, metavar="N", help="The number of nodes to have.")
@click.option("--force", is_flag=True, help="Shrinking: also remove nodes whose job is running.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before removing nodes (needed without a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print what was added and removed as JSON.")
@pass_app
def resize(app: App, total: int, force: bool, yes: bool, as_json: bool) -> None:
    """Grow or shrink the cluster to N nodes.

    Growing adds nodes with the next indexes (as `vca provision --total N`); shrinking removes workers
    first (highest index, idle ones first), then dev nodes, the head last (only --total 0 takes it).

    \b
      vca resize --total 8
      vca resize --total 2 --yes
    """
    cluster = app.cluster()
    result = cluster.resize(total, force=force, say=app.say, console=app.err,
                            confirm=_confirm(app, yes, "resize", cluster.name))
    if result.note:
        app.say(result.note)
    _report(app, as_json, result.removed, result.added, result.nodes)


@click.command()
@click.argument("action", type=click.Choice(["off", "on"]))
@node_option(metavar="NODE",
              help="Only these nodes: index, list or range, name (<cluster>-2), role (head, dev, workers) or "
                   "address; repeatable. Default: every node.")
@pass_app
def power(app: App, action: str, nodes: tuple[str, ...]) -> None:
    """Power nodes off (no compute cost) and on again, keeping their disks.

    Not `vca stop`, which stops jobs and leaves the nodes running. Powered-off nodes keep their index,
    role and disk (releases, files); `vca status` shows them as stopped. `power on` returns once they
    accept SSH again (EC2: new addresses, host keys checked against the ones pinned at creation) and
    gives them the current node list. A job running on a node powered off ends with it.

    \b
      vca power off                    # the whole cluster
      vca power off --node workers     # keep the head up
      vca power on
    """
    from ..cluster import index_ranges

    changed = app.cluster().power(action == "on", parse_indexes(nodes) or None, say=app.say)
    if not changed:
        app.say(f"nothing to power {action}: the nodes named are already {'running' if action == 'on' else 'stopped'}")
        return
    app.say(f"powered {action} node{'s' if len(changed) != 1 else ''} {index_ranges([n.index for n in changed])}")


@click.command("import")
@click.argument("ids", nargs=-1, required=True, metavar="INSTANCE_ID...")
@click.option("--role", type=click.Choice(["head", "worker", "dev"]), default=None,
              help="Node role of the imported nodes. Default: worker (head at index 0 of a cluster without one).")
@pass_app
def import_(app: App, ids: tuple[str, ...], role: str | None) -> None:
    """Adopt running instances into the cluster with the next free indexes (ec2).

    Only the instances named are read or tagged; one tagged for another cluster is refused. They are
    tagged like nodes vca made (vca:cluster, vca:index, vca:role), their host keys learnt on first
    contact; they get the cluster's setup roles and release, and every node the new node list.

    \b
      vca import i-0123456789abcdef0 i-0fedcba9876543210
    """
    from ..cluster import index_ranges

    new = app.cluster().import_instances(ids, role=role, say=app.say, console=app.err)
    app.say(f"imported node{'s' if len(new) != 1 else ''} {index_ranges([n.index for n in new])}")
