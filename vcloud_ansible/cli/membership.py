"""heal: gone nodes replaced under their indexes and roles."""

from __future__ import annotations

import json

import click

from .context import App, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: the healed nodes (index, name, role, address, instance); [] with nothing to heal.")
@pass_app
def heal(app: App, as_json: bool) -> None:
    """Replace the nodes that are gone under the same indexes and roles.

    A node is gone when its machine died (lab) or its instance was terminated (ec2; `vca status`
    shows it terminated). On ec2 the new instance is made as the old one was: its role's instance
    type and image, spot or on-demand, the cluster's tags and the same expiry. Each new node gets the
    setup stage and the release the cluster runs (started), and every node learns the new membership
    (names, hostfile, the new host key for node-to-node SSH; vca-on-change is called). A stopped
    node is not gone (`vca power on` starts it). With nothing to heal it says so and exits 0. When a
    replacement fails, it is removed again (ec2) and the node stays gone: run `vca heal` again.

    \b
      vca heal
      vca -c exp heal --json
    """
    cluster = app.cluster()
    new = cluster.heal(say=app.say, console=app.err)
    if as_json:
        click.echo(json.dumps([{"index": n.index, "name": n.name, "role": n.role, "address": n.address,
                                "instance": n.instance_id} for n in new]))
    elif not new:
        app.say(f"cluster '{cluster.name}': nothing to heal (no node is gone)")
    else:
        app.say(f"cluster '{cluster.name}': healed {', '.join(n.name for n in new)}")
