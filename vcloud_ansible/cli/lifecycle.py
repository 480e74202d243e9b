"""provision, teardown, destroy, clusters."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from ..errors import UsageError
from ..node import ROLES
from ..providers import PROVIDERS, declared_settings
from ..providers.settings import by_flag
from ..setup.settings import split_request
from ..spec import read_spec
from ..state import list_clusters
from .context import App, pass_app

F = TypeVar("F", bound=Callable[..., Any])


SETTING = "setting_"  # the parameter of a provider setting's flag: setting_<key>
GENERAL_OPTIONS = ("--role",)  # provision options of every provider that a provider also declares (ec2: vca:role)


def _provider_options(fn: F) -> F:
    """Every setting each registered provider declares, as a flag read from its environment variable
    when not given. Flags come from the declarations only: a new provider needs no edit here."""
    for flag, same in reversed(by_flag(declared_settings()).items()):
        if flag in GENERAL_OPTIONS:  # given through the command's own option, for every provider
            continue
        s = same[0]
        help_text = " ".join(f"[{x.provider}] {x.help_text} (env {x.envvar})" for x in same)
        envvars = [x.envvar for x in same]
        if s.kind == "bool":
            option = click.option(f"{flag}/--no-{flag[2:]}", SETTING + s.key, default=None, envvar=envvars,
                                  help=help_text)
        else:
            kind: Any = {"int": int, "choice": click.Choice(s.choices)}.get(s.kind, str)
            option = click.option(flag, SETTING + s.key, type=kind, default=None, envvar=envvars,
                                  metavar=s.metavar, multiple=s.kind in ("list", "map"), help=help_text)
        fn = option(fn)
    return fn


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("count", required=False, default=None, metavar="[N]")
@click.option("--provider", type=click.Choice(PROVIDERS), default=None, envvar="VCA_PROVIDER",
              help="Where nodes come from (env VCA_PROVIDER). Default: local (a lab of systemd-nspawn "
                   "machines on this host, needs root); ec2: Amazon EC2 or any EC2-compatible endpoint "
                   "(AWS_ENDPOINT_URL). Fixed when the cluster is created.")
@click.option("--total", type=int, default=None, metavar="N",
              help="Converge: add only the nodes the cluster lacks to have N in all (never removes any); "
                   "running it again adds nothing.")
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="VCA_SPEC", help="Cluster spec file (YAML: provider, nodes, <provider>: {settings}, setup: "
                                      "{roles}; `vca spec-schema` prints its schema); flags and environment "
                                      "override it (env VCA_SPEC).")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="Node role of the nodes this run adds: head, worker or dev (kept with the node, shown by "
                   "`vca status`, an inventory group). Default: node 0 head, others worker. At most one head.")
@click.option("--setup", "setup_roles", multiple=True, metavar="ROLE[@ON]",
              help="Name a setup role, applied to nodes once they accept SSH: a name on Ansible's roles path "
                   "or a path to a role folder, on all nodes or @head, @worker, @dev; repeatable. See `vca setup`.")
@click.option("--init-script", "init_file", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="A script every node runs once as root, after the setup roles and before the first inject; "
                   "nodes added later run it too (kept with the cluster). `vca status` shows its exit code, "
                   "`vca logs --init N` its output.")
@_provider_options
@pass_app
def provision(app: App, /, count: str | None, provider: str | None, total: int | None, spec_file: Path | None,
              role: str | None, setup_roles: tuple[str, ...], init_file: Path | None, **given: Any) -> None:
    """Add N nodes (default 1) to the cluster, creating it on first use.

    Running it again adds N more with the next indexes: `vca provision 4; vca provision 2`
    gives nodes 0-5. With --total N it converges on N nodes instead. Returns when every new node
    accepts SSH.

    \b
    EC2 (credentials only from the AWS chain: AWS_PROFILE, ~/.aws, environment):
      vca provision --provider ec2 --region eu-west-1 --instance-type c6i.large 10
      vca provision --total 12          # grow to 12, or nothing when there are 12
    Settings are stored with the cluster when it is created; later flags change them for new nodes.
    """
    settings: dict[str, Any] = {}
    setup: dict[str, list[str]] = {}
    if spec_file is not None:
        spec = read_spec(spec_file)
        provider, settings = provider or spec.provider, dict(spec.settings)
        setup = {on: list(roles) for on, roles in spec.setup.items()}
        if count is None and total is None:
            total = spec.total_to_provision()
    for key, value in given.items():
        if value is not None and value != ():
            settings[key.removeprefix(SETTING)] = value
    if count is not None and total is not None:
        raise UsageError("give N or --total, not both", "N adds nodes, --total N converges on N nodes")
    n = _count(count) if count is not None else (None if total is not None else 1)
    for role_name, on in map(split_request, setup_roles):
        setup.setdefault(on, []).append(role_name)
    from ..storage import init_script

    if init_file is not None:
        init_script.check(init_file)  # refused before anything is made
    cluster = app.cluster()
    with init_script.staged(cluster.state, init_file) as init_roles:
        for on, names in init_roles.items():
            setup.setdefault(on, []).extend(names)
        new = cluster.provision(n, provider, say=app.say, total=total, settings=settings or None, role=role,
                                setup=setup or None, console=app.err)
    from ..cluster import index_ranges

    have = len(cluster.nodes())
    if not new:
        app.say(f"cluster '{cluster.name}': nothing added ({have} node{'s' if have != 1 else ''} in all)")
        return
    app.say(f"cluster '{cluster.name}': added node{'s' if len(new) != 1 else ''} "
            f"{index_ranges([x.index for x in new])} ({have} node{'s' if have != 1 else ''} in all)")


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"node count must be a whole number >= 1, got '{text}'") from None
    if n < 1:
        raise UsageError(f"node count must be at least 1, got {n}")
    return n


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@pass_app
def teardown(app: App, yes: bool) -> None:
    """Remove every node of the cluster and everything made for them, then forget the cluster.

    Idempotent: tearing down a cluster that is already gone succeeds and says so.
    """
    cluster = app.cluster()
    confirm_or_yes(yes, "teardown", f"removes every node of cluster '{cluster.name}'")
    if not cluster.exists():
        app.say(f"cluster '{cluster.name}' does not exist: nothing to tear down")
        return
    if not yes:
        count = len(cluster.nodes())
        click.confirm(f"Tear down cluster '{cluster.name}' ({count} nodes)?", abort=True)
    result = cluster.teardown(say=app.say)
    if not result.existed:  # it existed a moment ago: another teardown, that this one waited for, ran
        app.say(f"cluster '{cluster.name}' was torn down meanwhile: nothing left to tear down")
        return
    gone = result.removed
    app.say(f"cluster '{cluster.name}' torn down ({len(gone)} node{'s' if len(gone) != 1 else ''} removed)")


def confirm_or_yes(yes: bool, verb: str, what: str) -> None:
    """A destructive command asks on a terminal; anywhere else (a script, a pipe, cron) it needs --yes,
    so that a script with a wrong or empty cluster name stops instead of destroying something."""
    if not yes and not sys.stdin.isatty():
        raise UsageError(f"{verb} {what} and needs --yes when stdin is not a terminal",
                         f"run `vca {verb} --yes` once you are sure")


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@click.option("--purge", is_flag=True,
              help="Also forget a cluster whose resources cannot be checked any more (credentials, region "
                   "or endpoint gone, resources deleted by hand); never one whose resources are still there.")
@pass_app
def destroy(app: App, yes: bool, purge: bool) -> None:
    """Forget the cluster (settings, key, inventory on this machine) once nothing of it is left.

    Checks the provider first (ec2: no instance, security group, key pair, launch template or
    volume tagged with the cluster) and refuses while anything is there: `vca teardown` removes it.
    For a cluster whose teardown could not finish, or whose resources were removed by other means.
    """
    cluster = app.cluster()
    confirm_or_yes(yes, "destroy", f"forgets cluster '{cluster.name}' (its key and settings)")
    if not yes and cluster.exists():
        click.confirm(f"Forget cluster '{cluster.name}' once nothing of it is left?", abort=True)
    if not cluster.destroy(purge=purge, say=app.say):
        app.say(f"cluster '{cluster.name}' does not exist: nothing to forget")
        return
    app.say(f"cluster '{cluster.name}' forgotten")


@click.command("clusters")
@pass_app
def clusters(app: App) -> None:
    """List clusters with their provider and node count."""
    names = list_clusters()
    if not names:
        app.say("no clusters; create one with `vca provision N`")
        return
    table = Table("cluster", "provider", "nodes", box=None, pad_edge=False)
    from ..cluster import Cluster, expiry_warning

    warnings, now = [], time.time()
    for name in names:
        cluster = Cluster(name)
        provider = cluster.record.provider
        try:
            nodes = cluster.nodes()
        except Exception as exc:  # one broken cluster must not hide the others
            table.add_row(name, provider, f"? ({exc})")
            continue
        expired = sum(1 for n in nodes if n.expired(now))
        table.add_row(name, provider, f"{len(nodes)} ({expired} expired)" if expired else str(len(nodes)))
        warnings.append(expiry_warning(name, nodes, now))
    app.out.print(table)
    for warning in filter(None, warnings):
        app.say(warning)
