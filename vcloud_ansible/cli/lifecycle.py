"""provision, teardown, clusters."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from ..errors import UsageError
from ..providers import PROVIDERS
from ..state import ClusterState, list_clusters
from .context import App, pass_app


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("count", required=False, default="1", metavar="[N]")
@click.option("--provider", type=click.Choice(PROVIDERS), default=None, envvar="VCA_PROVIDER",
              help="Where nodes come from (env VCA_PROVIDER). Default: local (a lab of systemd-nspawn "
                   "machines on this host, needs root). Fixed when the cluster is created.")
@pass_app
def provision(app: App, count: str, provider: str | None) -> None:
    """Add N nodes (default 1) to the cluster, creating it on first use.

    Running it again adds N more with the next indexes: `vca provision 4; vca provision 2`
    gives nodes 0-5. Returns when every new node accepts SSH.
    """
    n = _count(count)
    cluster = app.cluster()
    new = cluster.provision(n, provider, say=app.say)
    from ..cluster import index_ranges

    total = len(cluster.nodes())
    app.say(f"cluster '{cluster.name}': added node{'s' if len(new) != 1 else ''} "
            f"{index_ranges([x.index for x in new])} ({total} node{'s' if total != 1 else ''} in all)")


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"node count must be a whole number >= 1, got '{text}'") from None
    if n < 1:
        raise UsageError(f"node count must be at least 1, got {n}")
    return n


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def teardown(app: App, yes: bool) -> None:
    """Remove every node of the cluster and everything made for them, then forget the cluster.

    Idempotent: tearing down a cluster that is already gone succeeds and says so.
    """
    cluster = app.cluster()
    if not cluster.exists():
        app.say(f"cluster '{cluster.name}' does not exist: nothing to tear down")
        return
    if not yes and sys.stdin.isatty():
        count = len(cluster.nodes())
        click.confirm(f"Tear down cluster '{cluster.name}' ({count} nodes)?", abort=True)
    gone = cluster.teardown(say=app.say)
    app.say(f"cluster '{cluster.name}' torn down ({len(gone)} node{'s' if len(gone) != 1 else ''} removed)")


@click.command("clusters")
@pass_app
def clusters(app: App) -> None:
    """List clusters with their provider and node count."""
    names = list_clusters()
    if not names:
        app.say("no clusters; create one with `vca provision N`")
        return
    table = Table("cluster", "provider", "nodes", box=None, pad_edge=False)
    from ..cluster import Cluster

    for name in names:
        spec = ClusterState(name).load()
        try:
            count = str(len(Cluster(name).provider.nodes(ClusterState(name))))
        except Exception as exc:  # one broken cluster must not hide the others
            count = f"? ({exc})"
        table.add_row(name, spec.provider, count)
    app.out.print(table)
