"""create (a static cluster of existing hosts), forget-host."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UsageError
from .context import App, pass_app


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("name", metavar="NAME")
@click.option("--static", "hosts", multiple=True, metavar="HOST", required=True,
              help="An existing host: host, user@host:port, or a JSON object with host, user, port, identity, "
                   "work, scratch, capabilities, role; repeatable.")
@click.option("--user", default=None, metavar="USER", envvar="VCA_STATIC_USER",
              help="Login user of hosts that name none (env VCA_STATIC_USER). Default: root.")
@click.option("--port", default=None, type=click.IntRange(1, 65535), metavar="PORT", envvar="VCA_STATIC_PORT",
              help="SSH port of hosts that name none (env VCA_STATIC_PORT). Default: 22.")
@click.option("--identity", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              envvar="VCA_STATIC_IDENTITY",
              help="Private key vca first logs in with, then it authorizes the cluster's own key "
                   "(env VCA_STATIC_IDENTITY). Default: your ssh keys and agent.")
@click.option("--rescan", is_flag=True, help="Accept host keys that changed since vca pinned them.")
@click.option("--setup", "setup_roles", multiple=True, metavar="ROLE[@ON]",
              help="Name a setup role, applied once the hosts are nodes (as `vca provision --setup`).")
@click.option("--json", "as_json", is_flag=True, help="Print the new nodes as JSON.")
@pass_app
def create(app: App, name: str, hosts: tuple[str, ...], user: str | None, port: int | None,
           identity: Path | None, rescan: bool, setup_roles: tuple[str, ...], as_json: bool) -> None:
    """Make cluster NAME of hosts that exist already (provider static); again: add hosts.

    \b
      vca create lab --static 10.0.0.5 --static ops@10.0.0.6:2222 --identity ~/.ssh/id_ed25519
      vca create lab --static '{"host": "10.0.0.7", "capabilities": ["redis"], "role": "head"}'
      vca -c lab exec --where redis -- redis-cli ping
      vca -c lab teardown --yes     # everything of vca removed from the hosts; they keep running

    First contact pins each host key in $VCA_HOME/static_known_hosts (a changed key is refused: see
    `vca forget-host`) and authorizes the cluster's own key. Capabilities select nodes for every verb
    (--where CAP) and are inventory groups cap_CAP. vca never powers these hosts off.
    """
    from ..setup.settings import split_request

    if app.cluster_name is not None and app.cluster_name != name:
        raise UsageError(f"two cluster names: -c {app.cluster_name} and NAME {name}", "give NAME only")
    setup: dict[str, list[str]] = {}
    for role_name, on in map(split_request, setup_roles):
        setup.setdefault(on, []).append(role_name)
    app.cluster_name = name
    cluster = app.cluster()
    new = cluster.add_hosts(list(hosts), user=user, port=port, identity=identity, rescan=rescan,
                            setup=setup or None, say=app.say, console=app.err)
    every = cluster.nodes()
    if as_json:
        click.echo(json.dumps({"cluster": cluster.name, "added": [n.name for n in new],
                               "nodes": [{"name": n.name, "index": n.index, "host": n.details.get("host"),
                                          "role": n.role, "capabilities": list(n.capabilities)} for n in every]},
                              indent=2))
        return
    app.say(f"cluster '{cluster.name}': {len(new)} host{'s' if len(new) != 1 else ''} added "
            f"({len(every)} node{'s' if len(every) != 1 else ''} in all)")


@click.command("forget-host")
@click.argument("hosts", nargs=-1, required=True, metavar="HOST[:PORT]...")
@pass_app
def forget_host(app: App, hosts: tuple[str, ...]) -> None:
    """Forget the pinned host key of HOST (port 22, or HOST:PORT), e.g. after the host was reinstalled;
    the next `vca create --static` learns its key again.

    \b
      vca forget-host 10.0.0.6:2222
    """
    from ..providers.static.contact import forget, pins_path

    gone = forget(hosts)
    if not gone:
        raise UsageError(f"no pinned key for {', '.join(hosts)} in {pins_path()}",
                         "pinned hosts are listed there as host:port")
    app.say(f"forgot the host key of {', '.join(gone)}")
