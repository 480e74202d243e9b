"""The node side: one shell round trip (node.sh, run with ``sh -s``) and the records it prints.

Per node the script resolves REMOTE (unless absolute or ``~/``, relative to the release of the node's
last job, ``~/vca/job``, which wrote the results even when ``~/vca/current`` has moved on;
``~/vca/current`` when no job ran; globs expanded by the node's shell; folders recursive), lists every
file with its sha256 and makes ONE compressed tarball of the files the controller lacks: left in a
temporary file for the Ansible action to fetch, or streamed right behind the records. Nothing runs Python
on the node. Links: one to a file inside the collected tree travels as a copy of that file; links that
point outside it, links to folders, and matches of REMOTE that lead out of its folder are skipped and
reported.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .remote_path import RemoteSpec

COMPRESSIONS = ("auto", "zstd", "gz", "none")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# A real file beside this module (shipped in the wheel), read once; @NAME@ are filled in per run.
_NODE_SCRIPT = (Path(__file__).parent / "node.sh").read_text()


def node_script(spec: RemoteSpec, skip: Iterable[tuple[str, str]], compressors: Sequence[str],
                stream: bool = False) -> str:
    """The shell script one node runs (``sh -s``): prints NUL-terminated ``key=value`` records.

    ``skip``: (sha256, remote path) of files the controller already holds; the node leaves those out of
    the archive when they are unchanged. ``compressors``: the node takes the first it has. Without
    ``stream`` the archive is left in a temporary file (``archive=``) for the controller to fetch; with
    it, the archive follows the record ``stream=1`` on stdout.
    """
    skip_text = "".join(f"{sha}  {path}\n" for sha, path in skip
                        if _SHA_RE.match(sha) and "\n" not in path)  # grep -z patterns are lines
    words = " ".join(c for c in compressors if c in ("zstd", "gz", "none")) or "none"
    values = {"BASE": spec.base, "PATTERN": shlex.quote(spec.pattern), "PREFIX": shlex.quote(spec.prefix),
              "SHOWN": _sh_double_quoted(spec.given),
              "SKIP": shlex.quote(skip_text), "COMPRESSORS": words, "STREAM": "1" if stream else "0"}
    # One pass, so that a value holding "@...@" is never substituted again.
    return re.sub(r"@([A-Z]+)@", lambda m: values[m.group(1)], _NODE_SCRIPT)


def _sh_double_quoted(text: str) -> str:
    """``text`` for inside a double-quoted shell string: no expansion."""
    return "".join("\\" + c if c in '"$`\\' else c for c in text)


@dataclass
class Probe:
    """What a node's script reported."""

    host: str = ""
    tmp: str = ""
    base: str = ""
    roots: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # remote path -> sha256
    links: list[str] = field(default_factory=list)  # skipped links
    archive: str = ""
    compression: str = "none"
    error: str = ""
    complete: bool = False
    stream: bool = False  # the archive follows on the same stdout
    release: str = ""  # the release below ~/vca/releases the files came from ("" when none)
    release_from: str = ""  # for a relative REMOTE: "job" (the last job's release) or "current"

    @classmethod
    def parse(cls, stdout: str) -> Probe:
        p = cls()
        for record in stdout.split("\0"):
            key, sep, value = record.partition("=")
            key = key.strip("\n")
            if not sep:
                continue
            if key == "file":
                sha, sep2, path = value.partition("  ")
                if sep2 and _SHA_RE.match(sha):
                    p.files[path] = sha
            elif key == "root":
                p.roots.append(value)
            elif key == "link":
                p.links.append(value)
            elif key == "comp":
                p.compression = value
            elif key == "done":
                p.complete = True
            elif key == "stream":
                p.stream = True
            elif key in ("host", "tmp", "base", "archive", "error", "release", "release_from"):
                setattr(p, key, value)
        return p


def compressors(preference: str, same_machine: bool = False) -> list[str]:
    """What the node may use, best first, given what this machine can decompress. ``same_machine``: the
    nodes run on this machine (the local lab), where the link is a memory copy and compressing only
    takes CPU from the nodes (incompressible data collected 1.4x slower with zstd there)."""
    if preference not in COMPRESSIONS:
        raise UsageError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {preference!r}")
    if preference == "auto" and same_machine:
        return ["none"]
    if preference == "auto":
        # zstd -1 stores incompressible data at disk speed where gzip -1 crawls at about 25 MB/s.
        return ["zstd", "gz", "none"] if shutil.which("zstd") else ["gz", "none"]
    return [preference]
