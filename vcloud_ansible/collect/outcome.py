"""One node's collection as the caller sees it: the node, what was placed, kept or refused, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NodeInfo:
    dir_name: str  # <cluster>-<index>
    index: int | None
    instance_id: str | None = None


@dataclass
class NodeOutcome:
    """One node's collection: manifest entries of files placed (or found identical), and problems."""

    node: NodeInfo
    hostname: str = ""
    entries: list[dict[str, Any]] = field(default_factory=list)
    new: int = 0
    replaced: int = 0
    same: int = 0
    kept: int = 0  # already held with the right content: not even transferred
    bytes: int = 0  # bytes placed (new or replaced)
    archive_bytes: int = 0
    links_skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    release: str | None = None  # the release (below ~/vca/releases) the files came from

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def files(self) -> int:
        return self.new + self.replaced + self.same + self.kept

    def message(self) -> str:
        """One line: the first problem and how many more."""
        if not self.errors:
            return "ok"
        more = f" (and {len(self.errors) - 1} more problems)" if len(self.errors) > 1 else ""
        return self.errors[0] + more

    def report(self) -> dict[str, Any]:
        """The ``vca_report`` of the action: what ``vca collect`` sums up."""
        return {"node": self.node.dir_name, "node_index": self.node.index, "hostname": self.hostname,
                "files": self.files, "new": self.new, "replaced": self.replaced, "same": self.same,
                "kept": self.kept, "bytes": self.bytes, "archive_bytes": self.archive_bytes,
                "links_skipped": self.links_skipped[:20], "errors": self.errors[:20], "release": self.release}
