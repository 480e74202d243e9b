"""The storage roles' defaults and argument specs agree exactly: every variable prefixed, documented,
validated, with the same default in both places."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"


@pytest.mark.parametrize("role", ["scratch", "s3fs", "init_script"])
def test_defaults_and_argument_specs_agree(role: str) -> None:
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    options = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())[
        "argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, value in defaults.items():
        assert name.startswith(role + "_"), name
        assert options[name]["default"] == value, name
        assert options[name].get("description"), name
