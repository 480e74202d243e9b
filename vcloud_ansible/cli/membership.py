"""heal: gone nodes replaced under their indexes and roles."""

from __future__ import annotations

import json

import click

from .context import App, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the healed nodes (index, name, address).")
@pass_app
def heal(app: App, as_json: bool) -> None:
    """Replace the nodes that are gone under the same indexes and roles.

    A node is gone when its machine died (lab) or was terminated. Each new node gets the setup
    stage and the release the cluster runs (started), and every node learns the new membership
    (names, hostfile, the new host key for node-to-node SSH; vca-on-change is called). With nothing
    to heal it says so and exits 0.

    \b
      vca heal
      vca -c exp heal --json
    """
    cluster = app.cluster()
    new = cluster.heal(say=app.say, console=app.err)
    if as_json:
        click.echo(json.dumps([{"index": n.index, "name": n.name, "address": n.address} for n in new]))
    elif not new:
        app.say(f"cluster '{cluster.name}': nothing to heal (every node is up)")
    else:
        app.say(f"cluster '{cluster.name}': healed {', '.join(n.name for n in new)}")
