"""status, connect, exec, ssh-config, inventory: looking at and reaching the nodes."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click
from rich.table import Table

from ..cluster import GONE, expiry_warning, format_uptime
from ..guard.show import guard_cell
from ..release.inject import JobState, job_details
from ..remote.ssh import ExecResult
from ..storage import init_script
from .context import SECONDS, App, exec_argv, node_option, parse_indexes, pass_app, single_index
from .render import summarize

STATE_STYLE = {"up": "green", "running": "green", "unreachable": "yellow", "down": "red", "terminated": "red"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def status(app: App, as_json: bool) -> None:
    """Show every node: index, name, address, state (probed over SSH) and uptime."""
    cluster = app.cluster()
    rows = cluster.status()
    if as_json:
        app.out.print_json(json.dumps([
            {"index": s.node.index, "name": s.node.name, "address": s.node.address,
             "private_ip": s.node.private_ip, "role": s.node.role, "state": s.state, "uptime": s.uptime,
             **(job_details(s.job) if s.job else {}), **init_script.details(s.init),
             **({"guard": asdict(s.guard)} if s.guard else {}), **s.node.details}
            for s in rows
        ]))
        return
    table = Table(box=None, pad_edge=False, title=f"cluster {cluster.name} ({cluster.record.provider})",
                  title_justify="left")
    # Provider details (ec2: instance, type, zone, lifecycle, launch time) as extra columns; text only.
    extra = list(dict.fromkeys(k for s in rows for k, v in s.node.details.items() if isinstance(v, str)))
    inits = any(s.init for s in rows)  # an init column only where an init script ran
    guards = any(s.guard for s in rows)
    for col in ("index", "name", "address", "role", "state", "uptime", "release", "job", "since",
                *(["init"] if inits else []), *(["guard"] if guards else []), *extra):
        table.add_column(col, no_wrap=True)  # ids and states are read whole, never folded
    now = time.time()
    for s in rows:
        style = STATE_STYLE.get(s.state, "")
        job = s.job or JobState()
        release = job.release or "-"
        if job.job_release and job.job_release != job.release:
            release += f" (job: {job.job_release})"
        since = format_uptime(now - job.since) + " ago" if job.since else "-"
        table.add_row(str(s.node.index), s.node.name, s.node.address, s.node.role,
                      f"[{style}]{s.state}[/{style}]" if style else s.state, format_uptime(s.uptime),
                      release, job.label if s.job else "-", since, *([_init_cell(s.init, now)] if inits else []),
                      *([guard_cell(s.guard)] if guards else []),
                      *(str(s.node.details.get(k, "-")) for k in extra))
    app.out.print(table)
    down = [s.node.name for s in rows if s.state not in ("up", "running")]
    if down:
        app.say(f"{len(down)} of {len(rows)} nodes not up: {', '.join(down)}")
    gone = [s.node.name for s in rows if s.state in GONE]
    if gone:
        app.say(f"{', '.join(gone)} {'are' if len(gone) != 1 else 'is'} gone: `vca heal` brings "
                f"{'them' if len(gone) != 1 else 'it'} back under the same index and role")
    loose = [s.node.name for s in rows if s.state == "up" and s.node.details.get("supervised") is False]
    if loose:
        app.say(f"{', '.join(loose)} run{'s' if len(loose) == 1 else ''} without its lab supervisor (its "
                "systemd-nspawn was killed): a guest reboot will not bring it back; `vca teardown` removes it")
    bad = init_script.failed({s.node.name: s.init for s in rows})
    if bad:
        app.say(f"the init script failed on {', '.join(bad)}: `vca logs --init N` shows its output")
    warning = expiry_warning(cluster.name, [s.node for s in rows], now)
    if warning:
        app.say(warning)


def _init_cell(init: init_script.InitState | None, now: float) -> str:
    if init is None:
        return "-"
    text = f"exit {init.exit}, {format_uptime(now - init.at)} ago"
    return text if init.exit == 0 else f"[red]{text}[/red]"


class _IndexBeforeCommand(click.Command):
    """`vca connect -- CMD`: without an index before `--`, CMD is the command (on node 0), not the index."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args and all(a.startswith("-") for a in args[:args.index("--")]):
            at = args.index("--")
            args = [*args[:at], "0", *args[at:]]
        return super().parse_args(ctx, args)


@click.command(cls=_IndexBeforeCommand, context_settings={"ignore_unknown_options": True})
@click.argument("node", required=False, default="0", metavar="[N]")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD...]")
@pass_app
def connect(app: App, node: str, command: tuple[str, ...]) -> None:
    """Open an interactive SSH session on node N (default 0), or run one command there.

    N is an index, a name (<cluster>-N), a role naming one node (head, dev) or an address. The session
    starts in the release folder of the node's job, with the job's VCA_* environment (VCA_RELEASE,
    VCA_HEAD_IP, -e variables, VCA_RUN_DIR of its process 0) loaded; a node where no job ran gives a
    plain login shell. A command runs as ssh runs it (home folder, no job environment).

    \b
      vca connect 2
      vca connect head -- hostname
      vca connect demo-2 -- nproc
      vca connect -- hostname          # node 0
    """
    index = single_index(node, "connect")
    exec_argv(app.cluster().ssh_argv(index, " ".join(command) or None, into_job=True))


@click.command("exec", context_settings={"ignore_unknown_options": True})
@node_option(metavar="N",
              help="Node index, list or range (1,3 or 2-5), name (<cluster>-2), role (head, dev, workers) or "
                   "address; repeatable. Default: every node.")
@click.option("--all", "all_nodes", is_flag=True, help="Every node (the default).")
@click.option("--timeout", type=SECONDS, default=None, help="Seconds before a node's command is abandoned.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
@pass_app
def exec_(app: App, nodes: tuple[str, ...], all_nodes: bool, timeout: float | None,
          command: tuple[str, ...]) -> None:
    """Run CMD on nodes in parallel; print each line as `<node>: line`, then a summary.

    Exits non-zero, naming the nodes, when CMD failed anywhere.

    \b
      vca exec --all -- uptime
      vca exec --node 0 --node 2-3 -- 'df -h /'
    """
    if all_nodes and nodes:
        raise click.UsageError("give --all or --node, not both")
    cluster = app.cluster()
    results = cluster.exec(" ".join(command), parse_indexes(nodes) or None, timeout=timeout)
    for r in results:
        _print_result(app, r)
    app.say(summarize(results))


def _print_result(app: App, r: ExecResult) -> None:
    for line in r.stdout.splitlines():
        click.echo(f"{r.node.name}: {line}")
    for line in r.stderr.splitlines():
        click.echo(f"{r.node.name}: {line}", err=True)


@click.command("ssh-config")
@pass_app
def ssh_config(app: App) -> None:
    """Print Host entries <cluster>-<index> for ssh, scp, rsync and editors.

    \b
      vca ssh-config > ~/.ssh/vca-demo.conf   # then: Include vca-demo.conf in ~/.ssh/config
      ssh -F ~/.ssh/vca-demo.conf demo-1
      vca ssh-config | ssh -F /dev/stdin demo-1 hostname   # a command, without a file

    A process substitution cannot stand in for the file: OpenSSH closes inherited descriptors first.
    """
    click.echo(app.cluster().ssh_config(), nl=False)


@click.command()
@pass_app
def inventory(app: App) -> None:
    """Print the path of the cluster's Ansible inventory, for raw ansible-playbook.

    \b
      ansible-playbook -i "$(vca inventory)" playbooks/ping.yml
    """
    click.echo(str(app.cluster().inventory_path()))
