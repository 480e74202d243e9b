"""The errors of collecting: one node failed, a local file in the way, a name that would leave LOCAL."""

from __future__ import annotations

from ..errors import VcaError


class CollectError(VcaError):
    """Collecting from one node failed (nothing matched, unsafe name, conflict, bad archive)."""


class Conflict(CollectError):
    """A local file exists with other content and ``overwrite`` is off."""


class UnsafePath(CollectError):
    """A remote name that would land outside the node's local folder."""
