"""Installing a release on one node and starting its job: the node-side shell script and its report.
The contract it writes there (environment and files) is built by vcloud_ansible.release.contract.

Shared by the two ways a release reaches a node, so that they do exactly the same thing there:
``vca inject`` (vcloud_ansible.release.transport: one ssh session per node) and the ``vca_release`` Ansible
action (playbooks/inject.yml, for ``vca run inject`` and raw ansible-playbook). No Python runs on the
node: the script installs the POSIX sh agent (roles/package/files/vca-node) and calls it.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ..paths import resource_root
from .contract import Contract

AGENT_FILE = resource_root() / "roles" / "package" / "files" / "vca-node"
EOF_MARK = "VCA_EOF_7f3a9c"
# Installs python3 on a bare host (later roles run Ansible modules); quiet unless it fails.
BOOTSTRAP_PYTHON = """S=""; [ "$(id -u)" = 0 ] || S="sudo -n"
if command -v apt-get >/dev/null 2>&1; then
  $S apt-get update -qq >/dev/null &&
  DEBIAN_FRONTEND=noninteractive $S apt-get install -y -qq python3 >/dev/null
elif command -v dnf >/dev/null 2>&1; then $S dnf install -y -q python3
elif command -v apk >/dev/null 2>&1; then $S apk add -q python3
else echo "no known package manager (apt-get, dnf, apk) to install python3" >&2; exit 1
fi
"""


@dataclass
class JobOptions:
    """How a job starts on the nodes: what ``vca inject`` takes as flags, ``Cluster.inject`` as arguments
    and the ``vca_release`` Ansible action as task arguments. Stored with each release (release.json)."""

    env: dict[str, str] = field(default_factory=dict)  # the user's variables (-e), text
    procs: str = "1"  # a number or "auto"
    mem_kb: int = 0  # address-space limit per process; 0: none
    tmux: bool = False
    restart: bool = False
    grace: int = 10  # seconds between SIGTERM and SIGKILL
    bucket: str = ""  # S3 bucket the nodes download the package from ("" = over SSH)

    def extravars(self) -> dict[str, object]:
        """The same options as variables of playbooks/inject.yml."""
        return {"job_env": self.env, "procs": self.procs, "mem_kb": self.mem_kb, "tmux": self.tmux,
                "restart": self.restart, "grace": self.grace, "bucket": self.bucket}

    def fingerprint(self) -> str:
        """What the user chose for the job (-e, --procs, --mem, --tmux), as a short hash: the node keeps
        it with the job, so that a re-inject of the same release with other settings can say so."""
        text = json.dumps([sorted(self.env.items()), self.procs, int(self.mem_kb), bool(self.tmux)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# Releases each node keeps (besides the current one and the running job's); older ones are removed
# on inject, with their job folders.
KEEP_RELEASES = 5
# Leftovers of failed injects in ~/vca/incoming untouched for this long are swept on the next inject.
STALE_MINUTES = 60


@cache
def agent_text() -> str:
    """The node agent, installed by every inject (read once per process)."""
    return AGENT_FILE.read_text()


def probe_command(release_id: str) -> str:
    """One round trip before the transfer (the Ansible action): home, whether the node has the release
    and python3."""
    return (f'mkdir -p "$HOME/vca/incoming" "$HOME/vca/bin" && echo "home=$HOME" && '
            f'if [ -d "$HOME/vca/releases/{release_id}" ]; then echo have=1; fi; '
            'command -v python3 >/dev/null 2>&1 || echo nopython=1')


def run_script_command(script_len: int) -> str:
    """The remote command for a script that arrives first on stdin: ``head -c`` reads exactly the
    script, so whatever follows on stdin (the package) is left for the script itself."""
    return f'f=$(mktemp) && head -c {script_len} > "$f" && sh "$f"; rc=$?; rm -f "$f"; exit $rc'


def package_path(home: str, release_id: str, tag: str = "") -> str:
    """Where the package waits on the node before it is unpacked ("$P" in the install script); ``tag``
    makes it unique per inject, so that two injects at once never share a file."""
    return f"{home}/vca/incoming/{release_id}{tag}.tar"


# One installer at a time on a node (two injects at once, an inject and a provision): flock where the
# node has it, else a lock folder (a stale one, from a killed installer, is taken over after 15 min).
# Held until the script ends; the job's processes never inherit it (vca-node closes fd 9 for them).
NODE_LOCK = """if command -v flock >/dev/null 2>&1; then
  exec 9>>"$V/.lock"
  flock -w 900 9 || { echo "error=another inject held the node's lock ($V/.lock) for 15 minutes"; exit 1; }
else
  n=0
  until mkdir "$V/.lock.d" 2>/dev/null; do
    n=$((n + 1))
    [ "$n" -lt 4500 ] || { echo "error=another inject held the node's lock ($V/.lock.d) for 15 minutes"; exit 1; }
    [ -n "$(find "$V/.lock.d" -maxdepth 0 -mmin +15 2>/dev/null)" ] && { rmdir "$V/.lock.d" 2>/dev/null || true; }
    sleep 0.2
  done
  L="$V/.lock.d"
fi
"""


def _prelude(tag: str, release_id: str) -> str:
    """Shell lines every install script starts with: paths, the clean-up on exit, the node lock, the
    sweep of what failed injects left behind."""
    return f"""set -e
V="$HOME/vca"; mkdir -p "$V/incoming" "$V/bin"; P={package_path('"$HOME"', shlex.quote(release_id), tag)}
T=""; L=""
trap 'rm -rf "$P" "$P.part" ${{T:+"$T"}} ${{L:+"$L"}}' EXIT
{NODE_LOCK}find "$V/incoming" -mindepth 1 -maxdepth 1 -mmin +{STALE_MINUTES} -exec rm -rf {{}} + 2>/dev/null || true
[ ! -d "$V/releases" ] || find "$V/releases" -mindepth 1 -maxdepth 1 -name '.tmp-*' -exec rm -rf {{}} + || true
"""


def _agent_and_contract(contract: Contract) -> str:
    """Shell lines that put the agent in place and the contract files into "$T"."""
    return f"""T=$(mktemp -d "$V/incoming/.c.XXXXXX")
cat > "$T/agent" <<'{EOF_MARK}'
{agent_text()}{EOF_MARK}
if ! cmp -s "$T/agent" "$V/bin/vca-node"; then
  chmod 755 "$T/agent"; mv "$T/agent" "$V/bin/vca-node"; echo agent=updated
fi
cat > "$T/cluster.json" <<'{EOF_MARK}'
{contract.cluster_json}{EOF_MARK}
cat > "$T/hosts" <<'{EOF_MARK}'
{contract.hosts}{EOF_MARK}
{_file("hostfile", contract.hostfile) if contract.hostfile else ""}"""


def _file(name: str, text: str, private: bool = False) -> str:
    """Shell lines that write ``text`` to "$T/``name``" (``private``: mode 0600)."""
    umask = "(umask 077; cat" if private else "(cat"
    return f"""{umask} > "$T/{name}") <<'{EOF_MARK}'
{text}{EOF_MARK}
"""


def push_script(contract: Contract, files: dict[str, str], private: frozenset[str] = frozenset(),
                hook: str = "") -> str:
    """A membership push (vcloud_ansible.membership): the agent, the contract and ``files`` (name ->
    text, ``private`` ones 0600) into "$T", then ``vca-node contract "$T"``; no release, no job
    touched. ``hook``: "changed" or "always" calls the running release's vca-on-change. Prints the
    node's CPUs (``cpus=``) and the agent's ``key=value`` lines."""
    extra = "".join(_file(name, text, name in private) for name, text in files.items())
    if hook:
        extra += f'echo {shlex.quote(hook)} > "$T/on-change"\n'
    return f"""V="$HOME/vca"; mkdir -p "$V/incoming" "$V/bin"
{_prelude('.members-$$', 'none')}{_agent_and_contract(contract)}{extra}\
echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
"$V/bin/vca-node" contract "$T"
"""


# ``receive`` for a package that follows the script on the same stdin.
RECEIVE_INLINE = 'cat > "$P"  # the package follows the script on stdin\n'


def install_script(release_id: str, compression: str, contract: Contract, env: dict[str, str],
                   job: JobOptions, *, url: str = "", receive: str = "", bootstrap: bool = False,
                   tag: str = "", settings: str = "") -> str:
    """The script that installs the agent and the release, writes the node contract and launches.

    The package is at ``package_path`` ("$P"), or ``receive`` puts it there (shell lines), or it comes
    from ``url``, a presigned URL the node downloads from. ``bootstrap``: install python3 when the node
    lacks it. ``tag``: as given to ``package_path``. ``settings``: ``JobOptions.fingerprint``. Prints
    ``key=value`` lines (see ``Report``).
    """
    q = shlex.quote
    envfile = "".join(f"{k}={q(v)}\n" for k, v in sorted(env.items()))
    launch = " ".join(q(str(x)) for x in (release_id, job.procs, int(job.mem_kb), int(job.tmux),
                                          int(job.restart), int(job.grace)))
    settings_arg = q(settings or "-")
    boot = ""
    if bootstrap:
        boot = f"""if ! command -v python3 >/dev/null 2>&1; then
  if (
{BOOTSTRAP_PYTHON}) > "$V/incoming/.boot.err" 2>&1; then echo bootstrapped=1
  else echo "error=installing python3 on the node failed: $(tail -c 300 "$V/incoming/.boot.err" | tr '\\n' ' ')"; exit 1
  fi
fi
"""
    return f"""{_prelude(tag, release_id)}{receive}{_agent_and_contract(contract)}\
(umask 077; cat > "$T/env") <<'{EOF_MARK}'
{envfile}{EOF_MARK}
{_download(url, release_id)}"$V/bin/vca-node" install {q(release_id)} {q(compression)} "$P"
"$V/bin/vca-node" switch {q(release_id)}
"$V/bin/vca-node" contract "$T"
"$V/bin/vca-node" launch {launch} "$T/env" {settings_arg}
"$V/bin/vca-node" prune {KEEP_RELEASES}
rm -rf "$T"
{boot}"""


def _download(url: str, release_id: str) -> str:
    """Shell lines that fetch the release from a presigned URL (curl, wget or python3, what the node has)."""
    if not url:
        return ""
    u = shlex.quote(url)
    return f"""if [ ! -d "$V/releases/{release_id}" ]; then
  if command -v curl >/dev/null 2>&1; then curl -fsS --retry 3 -o "$P" {u}
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$P" {u}
  else python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' {u} "$P"
  fi || {{ echo "error=downloading the release from the package bucket failed"; exit 1; }}
  echo fetched=1
fi
"""


def kv(text: str) -> dict[str, str]:
    """``key=value`` lines (the last of a key wins); anything else is ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            out[key] = value
    return out


@dataclass
class Report:
    """What one node said after the install script ran, and what that means for vca."""

    release_id: str
    sent: bool  # the package went over SSH to this node
    fields: dict[str, str]
    errors: list[str]
    bootstrapped: bool = False

    @classmethod
    def parse(cls, release_id: str, sent: bool, rc: int, stdout: str, stderr: str,
              bootstrapped: bool = False) -> Report:
        fields = kv(stdout)
        errors = [line[6:] for line in stdout.splitlines() if line.startswith("error=")]
        if rc != 0 and not errors:
            errors = [stderr.strip()[-300:] or f"exit {rc}"]
        return cls(release_id, sent, fields, errors, bootstrapped or fields.get("bootstrapped") == "1")

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def fetched(self) -> bool:
        return self.fields.get("fetched") == "1"

    @property
    def job(self) -> str:
        return self.fields.get("job", "")

    @property
    def other_settings(self) -> bool:
        """The node already had this release's job, started with other settings, and left it as it was."""
        return self.fields.get("settings") == "other"

    @property
    def changed(self) -> bool:
        f = self.fields
        return (self.sent or self.fetched or self.bootstrapped or f.get("release") == "installed"
                or f.get("contract") == "changed" or f.get("agent") == "updated" or self.job == "started")

    def error_message(self) -> str:
        if self.fields.get("release") in ("installed", "present"):  # what failed came after the install
            return f"release {self.release_id} is installed, but {'; '.join(self.errors)}"
        return f"installing release {self.release_id} failed: {'; '.join(self.errors)}"

    def busy_message(self) -> str:
        return (f"release {self.release_id} installed; the job of release {self.fields.get('job_release')} "
                "is still running (use restart to replace it)")

    def vca_report(self) -> dict[str, Any]:
        """The summary ``vca inject`` prints from (also handed back by the Ansible action)."""
        return {"release_id": self.release_id, "sent": self.sent or self.fetched,
                "via": "s3" if self.fetched else "ssh", "job": self.job,
                "job_release": self.fields.get("job_release", ""), "other_settings": self.other_settings,
                "job_exit": self.fields.get("job_exit", ""), "stopped": self.fields.get("stopped", ""),
                "run": self.fields.get("run", "")}
