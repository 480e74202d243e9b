"""spec-schema: the JSON Schema of the cluster spec file."""

from __future__ import annotations

import json

import click

from ..spec import json_schema


@click.command("spec-schema")
def spec_schema() -> None:
    """Print the JSON Schema of the cluster spec file (`vca provision --spec FILE`).

    It comes from the settings every provider declares; editors and CI can check a spec file with it.
    """
    click.echo(json.dumps(json_schema(), indent=2))
