"""The guard's node side seen from here: the shell lines that install it (roles/package/files/vca-guard
beside the node agent, its settings in /etc/vca/guard.conf, the vca-guard service) and what it says in
the status probe."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ..paths import resource_root
from ..release.install import EOF_MARK, kv

GUARD_FILE = resource_root() / "roles" / "package" / "files" / "vca-guard"
STATUS_COMMAND = '[ ! -x "$HOME/vca/bin/vca-guard" ] || "$HOME/vca/bin/vca-guard" status'
"""Appended to the status probe: nothing on a node without the guard."""


@cache
def guard_text() -> str:
    return GUARD_FILE.read_text()


def install_lines(conf: str, urls: str = "") -> str:
    """Shell lines for a script that has ``$V`` (~/vca) and ``$T`` (a private temporary folder): the
    guard script and its settings in place, the service (re)started when either changed. Never fails
    the script: a node that cannot run the guard says ``guard=...`` or ``guard_error=...``."""
    return f"""cat > "$T/guard-agent" <<'{EOF_MARK}'
{guard_text()}{EOF_MARK}
cat > "$T/guard.conf" <<'{EOF_MARK}'
{conf}{EOF_MARK}
{_private("guard.urls", urls) if urls else ""}mkdir -p "$V/bin"
if ! cmp -s "$T/guard-agent" "$V/bin/vca-guard"; then
  chmod 755 "$T/guard-agent" && mv "$T/guard-agent" "$V/bin/vca-guard"
  touch "$T/restart"  # the service runs the new script
fi
sh "$V/bin/vca-guard" install "$T" || echo "guard_error=installing the guard failed"
"""


def _private(name: str, text: str) -> str:
    return f"""(umask 077; cat > "$T/{name}") <<'{EOF_MARK}'
{text}{EOF_MARK}
"""


def script(conf: str, urls: str = "") -> str:
    """A whole script that installs (or re-configures) the guard on a node."""
    return f"""V="$HOME/vca"; mkdir -p "$V/incoming"
T=$(mktemp -d "$V/incoming/.g.XXXXXX"); trap 'rm -rf "$T"' EXIT
{install_lines(conf, urls)}"""


@dataclass(frozen=True)
class GuardState:
    """What a node's guard says: ``state`` is watching, off (nothing to watch), inactive (its service
    does not run), idle (powering off), expired, interrupted or none (no settings)."""

    state: str
    idle_stop: int = 0
    idle_action: str = "stop"
    idle_for: int = 0
    expires_at: float = 0  # epoch seconds, 0: never
    busy: str = ""  # what kept it busy at its last look (job, job process, setup, ssh)
    interrupted: float | None = None  # when the spot interruption notice came
    checkpoint: str = ""  # exit code of the last vca-checkpoint it ran ("none": the release has none)
    now: float = 0  # the node's clock when it answered

    @classmethod
    def parse(cls, text: str) -> GuardState | None:
        f = kv(text)
        if "guard" not in f:
            return None

        def num(key: str) -> int:
            v = f.get(key, "")
            return int(v) if v.lstrip("-").isdigit() else 0

        return cls(state=f["guard"], idle_stop=num("guard_idle_stop"), idle_action=f.get("guard_idle_action", "stop"),
                   idle_for=num("guard_idle_for"), expires_at=num("guard_expires_at"), busy=f.get("guard_busy", ""),
                   interrupted=float(num("guard_interrupted")) if "guard_interrupted" in f else None,
                   checkpoint=f.get("guard_checkpoint", ""), now=num("guard_now"))

    def idle_left(self) -> int | None:
        """Seconds until the idle stop (None: no idle stop)."""
        return max(0, self.idle_stop - self.idle_for) if self.idle_stop else None

    def life_left(self) -> int | None:
        """Seconds until expiry (None: never)."""
        return max(0, int(self.expires_at - self.now)) if self.expires_at else None
