"""What to fetch: REMOTE as the node's shell will read it (base folder, pattern, the part local paths
are relative to)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..errors import UsageError

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class RemoteSpec:
    """REMOTE as the node's shell sees it: a base folder and a pattern relative to it.

    ``base`` is ``release`` (the release of the node's last job, else ``~/vca/current``), ``home`` or
    ``root`` (``/``). ``prefix`` is the part of the pattern without glob characters that local paths
    are relative to: the matches' folder, or with ``contents`` the match itself (REMOTE ``.``, ``dir/``,
    or ``--suffix`` without a glob, the old ``scp -r node:dir LOCAL.0`` form).
    """

    given: str
    base: str
    pattern: str
    prefix: str
    contents: bool

    @classmethod
    def parse(cls, remote: str, suffix: bool = False) -> RemoteSpec:
        if not remote or not remote.strip() or "\0" in remote or "\n" in remote:
            raise UsageError(f"bad REMOTE path {remote!r}", "give a file, folder or glob on the nodes")
        text = remote
        if text == "~" or text.startswith("~/"):
            base, text = "home", text[2:] or "."
        elif text.startswith("/"):
            base, text = "root", text.lstrip("/") or "."
        else:
            base = "release"
        pattern = posixpath.normpath(text)
        globbed = any(c in _GLOB_CHARS for c in pattern)
        contents = pattern == "." or remote.endswith("/") or (suffix and not globbed)
        if contents and not globbed:
            prefix = pattern
        else:
            parts = pattern.split("/")
            fixed: list[str] = []
            for part in parts[:-1]:
                if any(c in _GLOB_CHARS for c in part):
                    break
                fixed.append(part)
            prefix = "/".join(fixed) or "."
        return cls(remote, base, pattern, prefix, contents and not globbed)
