"""up, down: a cluster converged on its spec file, and removed again."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .context import App, pass_app
from .lifecycle import confirm_or_yes

# SPEC, for up and down alike (default vca.yml here, or VCA_SPEC)
spec_argument = click.argument("spec_file", required=False, type=click.Path(dir_okay=False, path_type=Path),
                               envvar="VCA_SPEC", metavar="[SPEC]")


@click.command()
@spec_argument
@click.option("--plan", "plan_only", is_flag=True, help="Print what it would do, do nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the steps (done or planned) as JSON.")
@pass_app
def up(app: App, spec_file: Path | None, plan_only: bool, as_json: bool) -> None:
    """Make the cluster match SPEC: nodes (create, add, remove), setup roles, the package (injected
    only when it or its env changed), services, in that order. Running it again changes nothing.

    \b
      vca up                      # vca.yml here, cluster 'default' (or -c NAME / VCA_CLUSTER)
      vca -c sweep up sweep.yml --plan
      vca -c sweep up sweep.yml --json    # {"changed": false, "steps": []} on a second run
      vca -c sweep down sweep.yml --yes
    """
    from ..spec import read_spec
    from ..up import up as converge

    spec = read_spec(spec_file or Path("vca.yml"))
    cluster = app.cluster()
    report = converge(cluster, spec, plan_only=plan_only, say=app.say, console=app.err)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    if not report.steps:
        app.say(f"cluster '{cluster.name}' matches {spec.path}: nothing to do")
        return
    for step in report.steps:
        click.echo(f"{'would ' if plan_only else ''}{step.action}: {step.what}")
    if not plan_only:
        app.say(f"cluster '{cluster.name}' matches {spec.path} ({len(report.steps)} steps, {report.seconds:.0f} s)")


@click.command()
@spec_argument
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the nodes removed as JSON.")
@pass_app
def down(app: App, spec_file: Path | None, yes: bool, as_json: bool) -> None:
    """Remove everything `vca up` made: every node (static hosts: cleaned, never powered off), the
    cluster's record. SPEC is checked (a spec that does not parse is refused before anything goes).

    \b
      vca -c sweep down sweep.yml --yes
    """
    from ..spec import read_spec
    from ..up import down as remove_all

    if spec_file is not None or Path("vca.yml").exists():
        read_spec(spec_file or Path("vca.yml"))
    cluster = app.cluster()
    confirm_or_yes(yes, "down", f"removes every node of cluster '{cluster.name}'")
    if not yes and cluster.exists():
        click.confirm(f"Remove cluster '{cluster.name}' and everything `vca up` made?", abort=True)
    gone = remove_all(cluster, app.say)
    if as_json:
        click.echo(json.dumps({"cluster": cluster.name, "removed": gone}, indent=2))
        return
    app.say(f"cluster '{cluster.name}': {len(gone)} node{'s' if len(gone) != 1 else ''} removed"
            if gone else f"cluster '{cluster.name}' does not exist: nothing to remove")
