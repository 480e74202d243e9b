"""service: pacemaker-managed services on the HA cluster (role ha_cluster): add, list, move, remove, logs."""

from __future__ import annotations

import json

import click
from rich.table import Table

from .context import App, pass_app, where, where_option


@click.group()
def service() -> None:
    """Services that pacemaker keeps running and moves when their node fails.

    Needs the ha_cluster setup role (`vca setup --add ha_cluster`). A service is one foreground
    command; PIDFILE in it becomes the service's PID file (the command then writes it itself).

    \b
      vca setup --add ha_cluster
      vca service add web -- python3 -m http.server 8080
      vca service add db --node 1 --user postgres --cwd /srv -- ./run-db --pid PIDFILE
      vca service add job --no-failover -- ./worker     # stays stopped while its node is down
      vca service list [--json]
      vca service move web 2
      vca service logs web
      vca service remove web
    """


@service.command()
@click.argument("name")
@click.argument("command", nargs=-1, required=False)
@click.option("--node", "node", default="any", show_default=True, metavar="N|any",
              help="Run on node N (index or name) whenever it is up; any: pacemaker chooses.")
@click.option("--user", default=None, metavar="USER", help="Run as USER (default root).")
@click.option("--cwd", default=None, metavar="DIR", help="Working folder on the node (absolute; default /).")
@click.option("--no-failover", is_flag=True, help="Never move it: it stays stopped while its node is down.")
@where_option("Only ever on nodes with capability CAP (static hosts' \"capabilities\"), failover included; "
              "repeatable or comma separated: every one is needed.")
@click.option("--json", "as_json", is_flag=True, help="Print the service as JSON.")
@pass_app
def add(app: App, name: str, command: tuple[str, ...], node: str, user: str | None, cwd: str | None,
        no_failover: bool, as_json: bool) -> None:
    """Add service NAME running COMMAND (after --) and wait until it runs.

    \b
      vca service add web -- python3 -m http.server 8080
      vca service add web --node 0 --no-failover -- python3 -m http.server 8080
      vca service add cache --where redis -- redis-server --port 6380   # static hosts with capability redis
    """
    info = app.cluster().add_service(name, list(command), node=node, user=user, cwd=cwd,
                                     failover=not no_failover, where=where(), say=app.say)
    if as_json:
        app.out.print_json(json.dumps(info.to_json()))
        return
    app.say(f"service '{info.name}' runs on {info.node}")


@service.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per service.")
@pass_app
def list_(app: App, as_json: bool) -> None:
    """Every service: where it runs, its state, fail count and since when."""
    rows = app.cluster().services()
    if as_json:
        app.out.print_json(json.dumps([s.to_json() for s in rows]))
        return
    if not rows:
        app.say("no services; add one with `vca service add NAME -- COMMAND`")
        return
    table = Table("name", "state", "node", "since", "fails", "failover", "placement", "command", box=None,
                  pad_edge=False)
    for s in rows:
        table.add_row(s.name, s.state, s.node or "-", s.since or "-", str(s.fail_count),
                      "yes" if s.failover else "no", s.placement, " ".join(s.command))
    app.out.print(table)


@service.command()
@click.argument("name")
@pass_app
def remove(app: App, name: str) -> None:
    """Stop service NAME everywhere, then forget it."""
    app.cluster().remove_service(name, say=app.say)


@service.command()
@click.argument("name")
@click.argument("node")
@pass_app
def move(app: App, name: str, node: str) -> None:
    """Run service NAME on NODE (index or name) from now on."""
    app.cluster().move_service(name, node, say=app.say)


@service.command()
@click.argument("name")
@click.option("--tail", "-n", default=100, show_default=True, help="Lines per node.")
@pass_app
def logs(app: App, name: str, tail: int) -> None:
    """The output of service NAME on each node that ran it (the node it runs on last)."""
    for node, text in app.cluster().service_logs(name, tail).items():
        app.out.print(f"==> {node} <==", markup=False)
        app.out.print(text.rstrip("\n"), markup=False, highlight=False)
