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
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the settings and what each node said.")
@pass_app
def guard(app: App, idle_stop: str | None, idle_action: str | None, lifetime: str | None, interval: int | None,
          as_json: bool) -> None:
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
    result = cluster.guard(idle_stop, idle_action, lifetime, interval=interval, say=app.say)
    if as_json:
        click.echo(json.dumps({"settings": asdict(result.settings), "nodes": result.nodes,
                               "failed": result.failed, "tagged": result.tagged}))
    if result.failed:
        raise RemoteFailed.naming("setting the guard", result.failed, len(result.nodes) + len(result.failed),
                                  "run `vca guard` again once the nodes answer")
