"""Entry point: the `vca` group, global options, and one-line error rendering."""

from __future__ import annotations

import importlib
import signal
import sys
import threading

import click

from .. import __version__
from ..errors import EnvironmentProblem, VcaError

# Each command's module is imported only when that command runs (or for --help): a command pays
# for its own imports, not for every other command's.
COMMANDS = {
    "provision": "lifecycle", "teardown": "lifecycle", "destroy": "lifecycle", "clusters": "lifecycle",
    "status": "nodes", "connect": "nodes", "exec": "nodes:exec_", "ssh-config": "nodes:ssh_config",
    "inventory": "nodes", "run": "run", "inject": "inject", "mkpkg": "inject", "logs": "inject", "attach": "inject",
    "stop": "inject", "wait": "inject", "collect": "collect", "put": "put", "setup": "setup",
    "compile": "compile", "spec-schema": "spec:spec_schema", "heal": "membership", "remove": "shape",
    "resize": "shape", "power": "shape", "import": "shape:import_",
    "create": "static", "forget-host": "static:forget_host", "up": "up", "down": "up",
    "spec": "spec:spec_cmd",
    "guard": "guard", "gc": "guard",
    "jobs": "jobs",
    "service": "service",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[cmd_name].partition(":")
        command: click.Command = getattr(importlib.import_module(f"{__package__}.{module}"),
                                         attr or cmd_name)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--cluster", "cluster_name", envvar="VCA_CLUSTER", metavar="NAME",
              help="Cluster to act on (env VCA_CLUSTER; default 'default'). a-z, 0-9, '-', at most 32.")
@click.option("-v", "--verbose", count=True, help="More output; for playbooks, Ansible's own (-vv, -vvv...).")
@click.version_option(__version__, prog_name="vca")
@click.pass_context
def cli(ctx: click.Context, cluster_name: str | None, verbose: int) -> None:
    """vca: named clusters of machines that run your code, built on Ansible.

    \b
      vca provision 4          # 4 nodes in the local lab (root), indexes 0-3
      vca exec -- hostname     # a command on every node
      vca status               # what runs where
      vca teardown --yes       # nothing left behind

    State lives in $VCA_HOME (default ~/.vca).
    """
    from .context import App

    ctx.obj = App(cluster_name=cluster_name, verbose=verbose)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (nothing half made is left)."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _interrupted(exc: KeyboardInterrupt) -> int:
    terminated = isinstance(exc, Terminated)
    click.echo("vca: terminated" if terminated else "vca: interrupted", err=True)
    return 143 if terminated else 130


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error becomes one line on stderr and a non-zero exit code."""
    if threading.current_thread() is threading.main_thread():  # only there can Python take signals
        signal.signal(signal.SIGTERM, _terminated)
    try:
        cli.main(args=argv, prog_name="vca", standalone_mode=False)
    except VcaError as exc:
        click.echo(f"vca: error: {exc.one_line()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort as exc:  # click turns Ctrl-C (and our SIGTERM) into Abort
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _interrupted(exc.__cause__)
        click.echo("vca: aborted", err=True)  # a confirmation answered no
        return 1
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx else ""
        click.echo(f"vca: error: {exc.format_message()}{where}", err=True)
        return exc.exit_code
    except OSError as exc:  # a file vca needs is unreadable, a disk is full, ...: the machine cannot do it
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"vca: error: {exc.strerror or exc}{where}", err=True)
        return EnvironmentProblem.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
