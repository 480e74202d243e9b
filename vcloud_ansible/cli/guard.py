"""guard: the cost guard of a running cluster (idle stop, lifetime); gc: vca's leftovers in the cloud."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from ..errors import RemoteFailed
from .context import App, pass_app


@click.command()
@click.option("--idle-stop", metavar="DURATION",
              help="Power a node off after it has been idle this long (no job or process a job started, no "
                   "Ansible task, no SSH terminal or long SSH command), e.g. 30m, 2h; 0 for never. "
                   "Default: 60m on ec2, never on the local lab.")
@click.option("--idle-action", type=str, metavar="stop|terminate",
              help="What an idle node does: stop (ec2: StopInstances, the disk kept; the default) or terminate "
                   "(ec2: the instance and its disk are gone). On the local lab both power the machine off.")
@click.option("--lifetime", metavar="+DURATION|0",
              help="The cluster expires this long from now (+4h, 2d); 0 for never. At expiry every node writes "
                   "a line to its job's log, runs the release's vca-checkpoint (at most 2 minutes) and powers "
                   "off even if a job runs. Default: ec2 --lifetime of provision (24h), never on the lab.")
@click.option("--interval", type=click.IntRange(1, 3600), hidden=True,
              help="Seconds between the guard's looks on a node (30).")
@click.option("--imds", metavar="URL", hidden=True,
              help="The instance metadata service the spot watch asks (default EC2's own).")
@click.option("--spot-watch", type=click.Choice(["auto", "on", "off"]), hidden=True,
              help="Watch for spot interruption notices: on spot instances (auto), on every node, or none.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the settings and what each node said.")
@pass_app
def guard(app: App, idle_stop: str | None, idle_action: str | None, lifetime: str | None, interval: int | None,
          imds: str | None, spot_watch: str | None, as_json: bool) -> None:
    """Change the cost guard of a running cluster: the nodes and the cloud tags, in one command.

    Every node runs a guard (the vca-guard service, installed by vca) that acts without this machine:
    it powers an idle node off, and powers every node off at the cluster's expiry after running the
    release's optional `vca-checkpoint`. Settings are kept with the cluster, so nodes added later get
    them. `vca status` shows each node's guard and the time left. Without options, the current
    settings are pushed to the nodes again.

    \b
      vca guard --idle-stop 30m                 # idle nodes stop after 30 minutes
      vca guard --idle-stop 2h --idle-action terminate
      vca guard --lifetime +4h                  # expires 4 hours from now (tags vca:expires-at too)
      vca guard --lifetime 0 --idle-stop 0      # no guard at all
    """
    cluster = app.cluster()
    result = cluster.guard(idle_stop, idle_action, lifetime, interval=interval, imds=imds, spot_watch=spot_watch,
                           say=app.say)
    if as_json:
        click.echo(json.dumps({"settings": asdict(result.settings), "nodes": result.nodes,
                               "failed": result.failed, "tagged": result.tagged}))
    if result.failed:
        raise RemoteFailed.naming("setting the guard", result.failed, len(result.nodes) + len(result.failed),
                                  "run `vca guard` again once the nodes answer")


@click.command()
@click.option("--region", "regions", multiple=True, metavar="REGION",
              help="Where to look (repeatable). Default: the regions of the EC2 clusters known here and "
                   "AWS_REGION.")
@click.option("--yes", is_flag=True, help="Remove what is listed (without it: a dry run, nothing changes).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: what was found, removed, and failed.")
@pass_app
def gc(app: App, regions: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """List (and with --yes remove) what vca left in the cloud.

    Looks only at resources tagged vca:cluster (instances, security groups, launch templates, key pairs,
    open spot requests): those of a cluster this machine does not know (torn down, forgotten, or made
    elsewhere), of a cluster whose provision was killed before any node came up, and instances past
    their vca:expires-at (a cluster whose every instance expired goes whole). Nothing without the tag
    is ever touched. A dry run by default.

    \b
      vca gc                          # what would go, and why
      vca gc --region eu-west-1 --region us-east-1 --yes
      vca gc --json
    """
    from ..guard.gc import gc as run_gc

    result = run_gc(list(regions), yes, app.say)
    if as_json:
        click.echo(json.dumps({"found": [asdict(x) for x in result.found],
                               "removed": [asdict(x) for x in result.removed], "failed": result.failed,
                               "forgotten": result.forgotten, "dry_run": not yes}))
    else:
        for x in result.found:
            click.echo(f"{x.region}  {x.kind:<15} {x.id:<24} {x.cluster:<20} {x.reason}"
                       + (f" ({x.state})" if x.state else ""))
    if not result.found:
        app.say("nothing to collect: every vca-tagged resource belongs to a live cluster known here")
    elif not yes:
        counts = result.counts(result.found)
        app.say(f"dry run: {_counted(counts)} would be removed; `vca gc --yes` removes exactly these")
    else:
        app.say(f"removed {_counted(result.counts(result.removed))}"
                + (f"; forgot cluster{'s' if len(result.forgotten) != 1 else ''} {', '.join(result.forgotten)}"
                   if result.forgotten else ""))
    if result.failed:
        raise RemoteFailed.naming("removing", result.failed, len(result.found), "run `vca gc --yes` again",
                                  noun="resources")


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items()) or "nothing"
