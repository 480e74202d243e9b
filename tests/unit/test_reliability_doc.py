"""docs/reliability.md shows the bad-input table exactly as the cases in tests/e2e/bad_inputs render it."""

from __future__ import annotations

import sys
from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

import bad_inputs  # noqa: E402


def test_the_documented_table_is_the_rendered_one() -> None:
    text = bad_inputs.DOC.read_text()
    assert text.count(bad_inputs.BEGIN) == 1 and text.count(bad_inputs.END) == 1
    assert bad_inputs.render_doc(text) == text, (
        f"docs/reliability.md's bad-input table is out of date: run `{bad_inputs.REGENERATE}`")


def test_every_case_is_a_row() -> None:
    cases = bad_inputs.all_cases()
    table = bad_inputs.render_table(cases)
    assert len(table.splitlines()) == len(cases) + 2
    assert all(f"| {c.needs} | {c.exit_code} |" in table for c in cases)


def test_render_replaces_only_between_the_markers() -> None:
    case = bad_inputs.Case("x", ("exec", "--timeout", "nan", "--", "a|b"), "positive", doc="Pipes | escaped.")
    text = f"head\n{bad_inputs.BEGIN}\nold\n{bad_inputs.END}\ntail\n"
    out = bad_inputs.render_doc(text, [case])
    assert out.startswith(f"head\n{bad_inputs.BEGIN}\n| # |") and out.endswith(f"{bad_inputs.END}\ntail\n")
    assert "old" not in out and "a\\|b" in out and "Pipes \\| escaped." in out
