"""Talking to static hosts before (and after) they are nodes: learn and pin their host keys, authorize
the cluster's key with the user's own login, and take everything of vca off them again.

Host keys are pinned per user in $VCA_HOME/static_known_hosts (``host:port type key``), like
~/.ssh/known_hosts: a cluster made again over the same host checks its key against the one first seen,
and a changed key is refused until the user forgets it (`vca forget-host HOST[:PORT]`) or rescans.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ...errors import UsageError, VcaError
from ...paths import ensure_private_dir, vca_home
from ...remote.access import read_known_hosts
from ...remote.ssh import parallel
from ...state import ClusterState, atomic_write
from .hosts import HostSpec

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "ssh-rsa")
SCAN_TIMEOUT = 5
ALIAS = "vca-static-host"  # the name a host's pinned key is checked under on first contact


class HostKeyChanged(VcaError):
    """A host answers with another key than the one vca pinned for it."""


def pins_path(home: Path | None = None) -> Path:
    return (home or vca_home()) / "static_known_hosts"


def _addr(spec: HostSpec) -> str:
    return f"{spec.host.lower()}:{spec.port}"


def read_pins(home: Path | None = None) -> dict[str, str]:
    return read_known_hosts(pins_path(home))


def write_pins(pins: dict[str, str], home: Path | None = None) -> None:
    base = home or vca_home()
    ensure_private_dir(base)
    atomic_write(pins_path(base), "".join(f"{h} {k}\n" for h, k in sorted(pins.items())))


def forget(hosts: Sequence[str], home: Path | None = None) -> list[str]:
    """Drop the pinned keys of ``hosts`` (``host`` means port 22, or ``host:port``); returns those dropped."""
    pins = read_pins(home)
    gone = []
    for h in hosts:
        name, sep, port = h.strip().rpartition(":") if h.count(":") == 1 else (h.strip(), "", "")
        key = f"{(name if sep else h.strip()).lower()}:{port if sep else 22}"
        if pins.pop(key, None) is not None:
            gone.append(key)
    if gone:
        write_pins(pins, home)
    return gone


def scan(spec: HostSpec) -> str | None:
    """The host's SSH key ("type base64"), the strongest type it offers; None when it does not answer."""
    try:
        res = subprocess.run(["ssh-keyscan", "-T", str(SCAN_TIMEOUT), "-p", str(spec.port), "-t",
                              "ed25519,ecdsa,rsa", spec.host], capture_output=True, text=True,
                             timeout=SCAN_TIMEOUT * 4, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    keys = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            keys[parts[1]] = f"{parts[1]} {parts[2]}"
    return next((keys[t] for t in KEY_TYPES if t in keys), next(iter(keys.values()), None))


def learn_keys(specs: Sequence[HostSpec], rescan: bool, home: Path | None = None) -> dict[tuple[str, int], str]:
    """Every host's key, checked against (or, first seen, added to) the pins. Refuses, before anything
    is pinned, when a host does not answer or answers with another key than the pinned one."""
    keys = parallel(scan, list(specs))
    silent = [s for s, k in zip(specs, keys, strict=True) if k is None]
    if silent:
        raise UsageError(f"static host{'s' if len(silent) > 1 else ''} not reachable over SSH: "
                         f"{', '.join(s.label for s in silent)} (no answer within {SCAN_TIMEOUT} s)",
                         "check the address, port and that sshd runs; nothing was installed on any host")
    pins = read_pins(home)
    changed = [s for s, k in zip(specs, keys, strict=True) if not rescan and pins.get(_addr(s), k) != k]
    if changed:
        named = ", ".join(_addr(s) for s in changed)
        raise HostKeyChanged(
            f"host key of {named} changed since vca first saw it (pinned in {pins_path(home)}); "
            "refusing: it may be another machine",
            f"if the host was reinstalled, `vca forget-host {' '.join(_addr(s) for s in changed)}` "
            "or run again with --rescan")
    for s, k in zip(specs, keys, strict=True):
        assert k is not None
        pins[_addr(s)] = k
    write_pins(pins, home)
    return {s.key: k for s, k in zip(specs, keys, strict=True) if k is not None}


def ssh_argv(spec: HostSpec, host_key: str, known_hosts: Path, identity: str | None) -> list[str]:
    """ssh to a host checked against its pinned key, logging in with ``identity`` (None: the user's
    own keys and agent)."""
    argv = ["ssh", "-T", "-p", str(spec.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", f"HostKeyAlias={ALIAS}", "-o", "LogLevel=ERROR", "-o", "ControlMaster=no", "-o", "ControlPath=none"]
    if identity:
        argv += ["-i", str(Path(identity).expanduser()), "-o", "IdentitiesOnly=yes"]
    return [*argv, f"{spec.user}@{spec.host}", "--"]


def run_on(spec: HostSpec, host_key: str, script: str, identity: str | None, timeout: float = 120) -> str | None:
    """``script`` (sh) on the host; None when it worked, else why not (one line)."""
    with tempfile.TemporaryDirectory(prefix="vca-static-") as tmp:
        known = Path(tmp) / "known_hosts"
        known.write_text(f"{ALIAS} {host_key}\n")
        try:
            res = subprocess.run([*ssh_argv(spec, host_key, known, identity), "sh -c " + shlex.quote(script)],
                                 capture_output=True, text=True, timeout=timeout, check=False,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return f"timed out after {timeout:.0f} s"
    if res.returncode == 0:
        return None
    lines = [x for x in (res.stderr + res.stdout).strip().splitlines() if x.strip()]
    return lines[-1][:300] if lines else f"exit {res.returncode}"


def authorize_script(spec: HostSpec, public_key: str) -> str:
    """Authorize the cluster's key for the login user; the work and scratch paths. Idempotent."""
    q = shlex.quote
    lines = ["set -eu", 'SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"',
             'mkdir -p "$HOME/.ssh"; chmod 700 "$HOME/.ssh"; touch "$HOME/.ssh/authorized_keys"',
             'chmod 600 "$HOME/.ssh/authorized_keys"',
             f'grep -qxF {q(public_key)} "$HOME/.ssh/authorized_keys" || printf "%s\\n" {q(public_key)} >> '
             '"$HOME/.ssh/authorized_keys"']
    if spec.work:
        w = q(spec.work.rstrip("/") + "/vca")
        lines += [f'if [ -e "$HOME/vca" ] && [ "$(readlink "$HOME/vca")" != {w} ]; then '
                  f'echo "$HOME/vca exists already: cannot place it in {spec.work}" >&2; exit 1; fi',
                  f'[ -d {q(spec.work)} ] || {{ mkdir -p {q(spec.work)} && '
                  f'touch {q(spec.work.rstrip("/") + "/.vca-made")}; }}',
                  f'mkdir -p {w}; [ -L "$HOME/vca" ] || ln -s {w} "$HOME/vca"']
    if spec.scratch:
        lines += [f"$SUDO mkdir -p /etc/vca {q(spec.scratch)}",
                  f"printf '%s\\n' {q(spec.scratch)} | $SUDO tee /etc/vca/scratch >/dev/null"]
    return "\n".join(lines) + "\n"


def cleanup_script(cluster: str, public_key: str) -> str:
    """Everything vca put on a host, removed: the job stopped, ~/vca (releases, agent; a work path it
    links to), /etc/vca (contract, hostfile, scratch), /var/lib/vca (init script), Ansible's
    ~/.ansible/tmp, the /etc/hosts block, a guard service, the HA cluster (services, daemons, keys; packages stay),
    node-to-node SSH (key pair, known hosts, ~/.ssh/config block, authorized member key) and last the
    cluster's own key. Nothing else is touched; the host keeps running."""
    q = shlex.quote
    c = q(cluster)
    return f"""set -u
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
V="$HOME/vca"; s="$HOME/.ssh"; C={c}
if [ -x "$V/bin/vca-node" ]; then timeout 60 "$V/bin/vca-node" stop 5 >/dev/null 2>&1 || true; fi
if [ -L "$V" ]; then  # a work path: its vca folder, and the work folder itself when vca made it
  t=$(readlink "$V"); w=$(dirname "$t"); rm -rf "$t"; rm -f "$V"
  [ ! -f "$w/.vca-made" ] || {{ rm -f "$w/.vca-made"; rmdir "$w" 2>/dev/null; }}
else rm -rf "$V"; fi
if [ -f /etc/systemd/system/vca-guard.service ]; then  # a guard from an older vca: gone with the rest
  $SUDO systemctl disable --now --quiet vca-guard 2>/dev/null; $SUDO rm -f /etc/systemd/system/vca-guard.service
  $SUDO systemctl daemon-reload 2>/dev/null
fi
if [ -e /usr/local/sbin/vca-ha ]; then  # the ha_cluster role's cluster: its services, daemons and keys
  $SUDO systemctl disable --now --quiet pacemaker pacemaker_remote corosync 2>/dev/null
  $SUDO rm -rf /usr/lib/ocf/resource.d/vca /usr/local/sbin/vca-ha /var/log/vca-services /run/vca-services \
    /etc/corosync/authkey /etc/corosync/corosync.conf /etc/pacemaker/authkey
fi
$SUDO rm -rf /etc/vca /var/lib/vca || exit 1
rm -rf "$HOME/.ansible/tmp"; rmdir "$HOME/.ansible" 2>/dev/null  # the setup stage's module files
if grep -q '^# BEGIN vca' /etc/hosts; then
  awk '/^# BEGIN vca/{{skip=1; next}} /^# END vca/{{skip=0; next}} !skip' /etc/hosts > "$HOME/.vca-hosts.tmp" \\
    && $SUDO sh -c "cat '$HOME/.vca-hosts.tmp' > /etc/hosts" || exit 1
  rm -f "$HOME/.vca-hosts.tmp"
fi
member=$(cat "$s/vca-$C.pub" 2>/dev/null || true)
rm -f "$s/vca-$C" "$s/vca-$C.pub" "$s/vca-$C.known_hosts"
if [ -f "$s/config" ] && grep -q "^# BEGIN vca $C " "$s/config"; then
  awk -v b="# BEGIN vca $C " -v e="# END vca $C" 'index($0, b) == 1 {{skip=1; next}} $0 == e {{skip=0; next}} !skip' \\
    "$s/config" > "$s/config.vca.tmp" && cat "$s/config.vca.tmp" > "$s/config"; rm -f "$s/config.vca.tmp"
  [ -s "$s/config" ] || rm -f "$s/config"
fi
if [ -f "$s/authorized_keys" ]; then
  {{ grep -vxF -e {q(public_key)} ${{member:+-e "$member"}} "$s/authorized_keys" || true; }} \\
    > "$s/authorized_keys.vca.tmp"
  cat "$s/authorized_keys.vca.tmp" > "$s/authorized_keys"; rm -f "$s/authorized_keys.vca.tmp"
fi
echo cleaned
"""


def cleanup(state: ClusterState, specs: Sequence[tuple[HostSpec, str]]) -> dict[tuple[str, int], str | None]:
    """Run the cleanup on each host (with the cluster's key), all at once: host -> None or why it failed."""
    script = cleanup_script(state.name, state.public_key())
    results = parallel(lambda p: run_on(p[0], p[1], script, str(state.key_path)), list(specs))
    return {s.key: why for (s, _), why in zip(specs, results, strict=True)}
