"""How a node's guard reads in `vca status`."""

from __future__ import annotations

from .node import GuardState
from .settings import format_seconds


def guard_cell(g: GuardState | None) -> str:
    """'idle 12s of 30m, 3h59m left', 'expired', 'interrupted', 'off'; '-' without a guard."""
    if g is None or g.state == "none":
        return "-"
    if g.state == "off":
        return "off"
    if g.state in ("expired", "idle", "interrupted"):
        style = "yellow" if g.state == "interrupted" else "red"
        return f"[{style}]{g.state}[/{style}]"
    parts = []
    idle = g.idle_left()
    if idle is not None:
        parts.append(f"busy ({g.busy})" if g.busy
                     else f"idle {format_seconds(g.idle_for)} of {format_seconds(g.idle_stop)}")
    life = g.life_left()
    if life is not None:
        parts.append(f"{format_seconds(life)} left")
    if g.state != "watching":
        parts.insert(0, g.state)
    return ", ".join(parts) or "off"
