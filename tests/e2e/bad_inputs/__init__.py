"""The bad-input table: every input vca refuses, one `Case` each, in one module per area (cli, pkg,
collect, inject, ec2). tests/e2e/test_bad_input_table.py runs them all; docs/reliability.md shows them
as a table rendered from here. After adding or changing a case, regenerate that table:

    python tests/e2e/bad_inputs/__init__.py --write
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    id: str                      # short unique slug, e.g. "mkpkg-output-dev-null"
    argv: tuple[str, ...]        # arguments after `vca`. Placeholders replaced by the runner:
                                 #   {pkg}     a copy of examples/hello in a temp folder (a valid package)
                                 #   {tmp}     a fresh empty temp folder
                                 #   {cluster} the shared lab cluster's name (needs="lab")
    words: str                   # must appear in the single `vca: error: ...` line
    exit_code: int = 2
    needs: str = "none"          # "none" | "lab": a shared 2-node lab cluster that has examples/hello
                                 # injected and finished | "aws": a moto server (AWS_* env set to it)
                                 # | "ha": the HA cluster of tests/e2e/test_service.py (run there), with
                                 # nodes 0-3 and a service "web"
    env: dict[str, str] = field(default_factory=dict)   # extra environment ({tmp} and {pkg} replaced)
    files: dict[str, str] = field(default_factory=dict) # files to create first, path under {tmp} -> text
    doc: str = ""                # one sentence for docs/reliability.md: what was tried, what vca does now


NEEDS = ("none", "lab", "aws", "ha")
DOC = Path(__file__).resolve().parents[3] / "docs" / "reliability.md"
BEGIN = "<!-- bad-inputs:begin (generated from tests/e2e/bad_inputs; do not edit by hand) -->"
END = "<!-- bad-inputs:end -->"
REGENERATE = "python tests/e2e/bad_inputs/__init__.py --write"


def all_cases() -> list[Case]:
    """CASES of every module in this package, by module name; ids are unique."""
    cases: list[Case] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        cases += getattr(module, "CASES", [])
    ids = [c.id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"duplicate bad-input case ids: {', '.join(dup)}")
    bad = [c.id for c in cases if c.needs not in NEEDS]
    if bad:
        raise ValueError(f"bad-input cases with an unknown `needs`: {', '.join(bad)}")
    return cases


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _command(case: Case) -> str:
    env = " ".join(f"{k}={v!r}" if v == "" or " " in v else f"{k}={v}" for k, v in case.env.items())
    args = " ".join(a if a and not any(ch in a for ch in " '\"*;&") else repr(a) for a in case.argv)
    return f"`{(env + ' ') if env else ''}vca {args}`"


def render_table(cases: list[Case] | None = None) -> str:
    """The Markdown table of every case: command, needs, exit code, the words of the error, what it means."""
    rows = ["| # | command | needs | exit | error line contains | what vca does |",
            "|---|---|---|---|---|---|"]
    for i, c in enumerate(cases if cases is not None else all_cases(), 1):
        rows.append(f"| {i} | {_cell(_command(c))} | {c.needs} | {c.exit_code} | {_cell(c.words)} | "
                    f"{_cell(c.doc)} |")
    return "\n".join(rows) + "\n"


def render_doc(text: str, cases: list[Case] | None = None) -> str:
    """``text`` (docs/reliability.md) with the part between the markers replaced by the table."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{render_table(cases)}{text[end:]}"


def _main(argv: list[str]) -> int:
    current = DOC.read_text()
    wanted = render_doc(current)
    if "--write" in argv:
        if wanted != current:
            DOC.write_text(wanted)
        print(f"{DOC}: {len(all_cases())} cases")
        return 0
    if wanted != current:
        print(f"{DOC} is out of date: run `{REGENERATE}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import this folder as the package
    import bad_inputs

    sys.exit(bad_inputs._main(sys.argv[1:]))
