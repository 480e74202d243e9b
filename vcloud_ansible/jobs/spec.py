"""The job CSV: one row per job, read and checked whole before anything is made.

Header ``instance_type,command``, optional columns ``name`` (the job's folder in the bucket; default
``job-<index>``), ``env`` (``K=V;K=V``), ``timeout`` (seconds) and ``files`` (``;``-separated paths or
globs below the release folder to upload; default: the ``results/`` folder). Fields follow CSV's own
rules: a quoted field may hold commas, quotes (doubled) and newlines. Every error names its line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..release.inject import check_env_var

REQUIRED = ("instance_type", "command")
OPTIONAL = ("name", "env", "timeout", "files")
COLUMNS = REQUIRED + OPTIONAL
MAX_JOBS = 1000  # rows per array: one node each
MAX_TIMEOUT = 7 * 24 * 3600  # the longest a presigned upload stays valid
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
HINT = "the header is instance_type,command (optional: name, env, timeout, files); see `vca jobs run --help`"


@dataclass(frozen=True)
class JobRow:
    index: int  # 0-based, in file order: VCA_JOB_INDEX
    line: int  # where the row starts in the file (1-based, the header is line 1)
    instance_type: str
    command: str
    name: str
    env: dict[str, str] = field(default_factory=dict)
    timeout: int | None = None  # seconds the command may run; None: no limit
    files: tuple[str, ...] = ()  # what to upload beside stdout/stderr; () means results/

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["files"] = list(self.files)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> JobRow:
        return cls(**{**d, "files": tuple(d.get("files") or ())})


def read_file(path: Path, check_type: Callable[[list[str]], dict[str, str]] | None = None) -> list[JobRow]:
    """The rows of the CSV at ``path``; UsageError naming the file and line of the first problem.
    ``check_type(types)`` returns {type: why} for the instance types it refuses."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no job file {path}", "give the path of a CSV with instance_type,command rows") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a job CSV") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text", "save the CSV as UTF-8") from None
    return parse(text, str(path), check_type)


def parse(text: str, source: str = "jobs.csv",
          check_type: Callable[[list[str]], dict[str, str]] | None = None) -> list[JobRow]:
    if not text.strip():
        raise UsageError(f"{source}:1: the job file is empty", HINT)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise UsageError(f"{source}:1: {exc}", HINT) from None
    columns = [h.strip().lower() for h in header]
    _check_header(columns, source)
    rows: list[JobRow] = []
    names: dict[str, int] = {}
    start = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UsageError(f"{source}:{start}: {exc}", "close every quoted field with a \"") from None
        line, start = start, reader.line_num + 1
        if not fields or all(not f.strip() for f in fields):
            continue  # blank lines (a trailing one, or between rows) are not jobs
        if len(fields) != len(columns):
            raise UsageError(f"{source}:{line}: {len(fields)} field{'s' if len(fields) != 1 else ''}, the header "
                             f"has {len(columns)} ({','.join(columns)})",
                             "quote a field that holds a comma: \"a, b\"")
        row = _row(dict(zip(columns, fields, strict=True)), len(rows), line, source)
        if row.name in names:
            raise UsageError(f"{source}:{line}: job name '{row.name}' is taken by line {names[row.name]}",
                             "give every job its own name")
        names[row.name] = line
        rows.append(row)
        if len(rows) > MAX_JOBS:
            raise UsageError(f"{source}:{line}: more than {MAX_JOBS} jobs", "split the file into several arrays")
    if not rows:
        raise UsageError(f"{source}:1: the job file has a header but no jobs", "add one row per job")
    if check_type is not None:
        refused = check_type(sorted({r.instance_type for r in rows}))
        for r in rows:
            if r.instance_type in refused:
                raise UsageError(f"{source}:{r.line}: {refused[r.instance_type]}",
                                 "give an instance type such as t3.micro or c5.large")
    return rows


def _check_header(columns: list[str], source: str) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        if columns and columns[0] and not set(columns) & set(COLUMNS):
            raise UsageError(f"{source}:1: no header (the first line is '{','.join(columns)[:60]}')",
                             "start the file with the line instance_type,command")
        raise UsageError(f"{source}:1: the header lacks {' and '.join(missing)}", HINT)
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise UsageError(f"{source}:1: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}", HINT)
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise UsageError(f"{source}:1: column {', '.join(dup)} appears twice", HINT)


def _row(f: dict[str, str], index: int, line: int, source: str) -> JobRow:
    where = f"{source}:{line}"
    itype = f["instance_type"].strip()
    if not itype:
        raise UsageError(f"{where}: empty instance_type", "give an instance type such as t3.micro")
    command = f["command"]
    if not command.strip():
        raise UsageError(f"{where}: empty command", "give the command the job runs")
    if "\0" in command:
        raise UsageError(f"{where}: the command holds a NUL byte")
    name = (f.get("name") or "").strip() or f"job-{index}"
    if not JOB_NAME_RE.match(name):
        raise UsageError(f"{where}: job name '{name}' is not a folder name S3 and every shell can take",
                         "use letters, digits, '.', '_' and '-', at most 63, starting with a letter or digit")
    return JobRow(index=index, line=line, instance_type=itype, command=command, name=name,
                  env=parse_env(f.get("env") or "", where), timeout=_timeout(f.get("timeout") or "", where),
                  files=_files(f.get("files") or "", where))


def parse_env(text: str, where: str = "env") -> dict[str, str]:
    """``K=V;K=V`` (spaces around each pair ignored; an empty field: no variables)."""
    out: dict[str, str] = {}
    for pair in text.split(";"):
        if not pair.strip():
            continue
        key, sep, value = pair.strip().partition("=")
        if not sep:
            raise UsageError(f"{where}: env entry '{pair.strip()}' is not K=V", "write env as K=V;K=V")
        try:
            check_env_var(key, value)
        except UsageError as e:  # the same rules as inject -e, said with the row's line
            raise UsageError(f"{where}: {e.message}", e.hint) from None
        if key in out:
            raise UsageError(f"{where}: env name '{key}' is given twice")
        out[key] = value
    return out


def _timeout(text: str, where: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_TIMEOUT:
        raise UsageError(f"{where}: timeout '{text}' is not a whole number of seconds from 1 to {MAX_TIMEOUT}",
                         "give seconds, e.g. 3600, or leave it empty for no limit")
    return int(text)


def _files(text: str, where: str) -> tuple[str, ...]:
    out = []
    for part in text.split(";"):
        p = part.strip()
        if not p:
            continue
        if p.startswith("/") or any(seg == ".." for seg in p.split("/")):
            raise UsageError(f"{where}: file '{p}' is not below the job's folder",
                             "name files relative to the package folder, without ..")
        out.append(p)
    return tuple(out)


def type_checker(types: Iterable[str], known: Callable[[str], bool]) -> dict[str, str]:
    return {t: f"unknown instance type '{t}'" for t in types if not known(t)}
