"""run: any playbook against the cluster."""

from __future__ import annotations

import click
import yaml

from ..errors import UsageError
from .context import App, pass_app


def parse_extravars(pairs: tuple[str, ...]) -> dict[str, object]:
    """key=value pairs; values are read as YAML scalars (3 -> int, true -> bool, text stays text).

    ``job_env`` (the job's environment for the inject playbook, a JSON/YAML mapping) is the exception:
    it is passed as text that Ansible never templates, so its values reach the job byte for byte.
    """
    from ..playbook.runner import Verbatim

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"expected key=value with a variable name as key, got '{pair}'")
        if key == "job_env":
            out[key] = Verbatim(value)
            continue
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        out[key] = parsed if isinstance(parsed, str | int | float | bool) else value
    return out


@click.command()
@click.argument("playbook", required=False)
@click.argument("extravars", nargs=-1, metavar="[KEY=VALUE...]")
@click.option("--limit", "-l", default=None, help="Ansible host pattern, e.g. head or 'demo-[1:3]'.")
@pass_app
def run(app: App, playbook: str | None, extravars: tuple[str, ...], limit: str | None) -> None:
    """Run playbooks/PLAYBOOK.yml (or a path to a playbook) against the cluster.

    Shows progress (hosts done / total, failures as they happen) and a per-host summary;
    -v streams Ansible's own output instead. Exits non-zero naming the hosts that failed.

    \b
      vca run ping
      vca run inject pkg=examples/hello
      vca run inject pkg=examples/hello job_env='{"GREETING": "0755"}' restart=true
    """
    from ..playbook.runner import available_playbooks, resolve_playbook

    if playbook is None:
        raise UsageError(f"name a playbook: {', '.join(available_playbooks())}, or a path to one")
    cluster = app.cluster()
    cluster.state.load()  # an unknown cluster is told first, then an unknown playbook, before any node is listed
    resolve_playbook(playbook)
    result = cluster.run(playbook, parse_extravars(extravars), limit=limit, verbose=app.verbose, console=app.err)
    result.raise_for_failures(f"playbook {playbook}")
