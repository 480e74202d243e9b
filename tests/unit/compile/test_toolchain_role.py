"""The toolchain role's inputs: defaults and argument specs agree (the lab test installs the list)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "toolchain"


def test_defaults_and_argument_specs_agree() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(specs)
    for name, spec in specs.items():
        assert name.startswith("toolchain_")
        assert spec["default"] == defaults[name], name
        assert spec.get("description"), name

