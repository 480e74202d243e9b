"""Entry point: the `vca` group, global options, and one-line error rendering."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import VcaError
from .collect import collect
from .context import App
from .jobs import attach, inject, logs, mkpkg, stop, wait
from .lifecycle import clusters, destroy, provision, teardown
from .nodes import connect, exec_, inventory, ssh_config, status
from .run import run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = App(cluster_name=cluster_name, verbose=verbose)


for command in (provision, teardown, destroy, clusters, status, connect, exec_, ssh_config, inventory, run,
                inject, mkpkg, logs, attach, stop, wait, collect):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error becomes one line on stderr and a non-zero exit code."""
    try:
        cli.main(args=argv, prog_name="vca", standalone_mode=False)
    except VcaError as exc:
        click.echo(f"vca: error: {exc.one_line()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("vca: aborted", err=True)
        return 1
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx else ""
        click.echo(f"vca: error: {exc.format_message()}{where}", err=True)
        return exc.exit_code
    except OSError as exc:  # a file vca needs is unreadable, a disk is full, ...
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"vca: error: {exc.strerror or exc}{where}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("vca: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
