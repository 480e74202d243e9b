"""spec-schema: the JSON Schema of the cluster spec file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UsageError
from ..spec import json_schema, read_spec


@click.command("spec-schema")
def spec_schema() -> None:
    """Print the JSON Schema of the cluster spec file (`vca provision --spec FILE`).

    It comes from the settings every provider declares; editors and CI can check a spec file with it.
    """
    click.echo(json.dumps(json_schema(), indent=2))


@click.command("spec")
@click.argument("spec_file", required=False, type=click.Path(dir_okay=False, path_type=Path), metavar="[SPEC]")
@click.option("--schema", is_flag=True, help="Print the JSON Schema (as `vca spec-schema`).")
def spec_cmd(spec_file: Path | None, schema: bool) -> None:
    """Check a spec file (exit 2 with the key's line when it is wrong), or print its JSON Schema.

    \b
      vca spec vca.yml
      vca spec --schema > vca.schema.json     # for editors and CI
    """
    if schema == (spec_file is not None):
        raise UsageError("give a spec file to check, or --schema", "vca spec vca.yml | vca spec --schema")
    if schema:
        click.echo(json.dumps(json_schema(), indent=2))
        return
    assert spec_file is not None
    read_spec(spec_file)
    click.echo(f"{spec_file}: ok")
