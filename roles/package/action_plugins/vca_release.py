"""Action vca_release: put a packed release on one node and start it (see library/vca_release.py).

The hot path of `vca inject` runs no Python on the node: one shell round trip to look, one file
transfer over the already open SSH connection (only when the node lacks the release), one shell
round trip that installs the node agent, unpacks, writes the node contract and launches.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

AGENT = Path(__file__).resolve().parent.parent / "files" / "vca-node"
EOF_MARK = "VCA_EOF_7f3a9c"
# Packages up to this size ride on the install step's stdin; larger ones go by sftp, streamed from
# disk, so that a worker never holds a big package in memory.
INLINE_MAX = 16 << 20
BOOTSTRAP_PYTHON = """set -e
S=""; [ "$(id -u)" = 0 ] || S="sudo -n"
if command -v apt-get >/dev/null 2>&1; then
  $S apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $S apt-get install -y -qq python3 >/dev/null
elif command -v dnf >/dev/null 2>&1; then $S dnf install -y -q python3
elif command -v apk >/dev/null 2>&1; then $S apk add -q python3
else echo "no known package manager (apt-get, dnf, apk) to install python3" >&2; exit 1
fi
"""


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        a = self._task.args
        rid = str(a["release_id"])
        if not rid.isalnum():
            raise AnsibleActionFail(f"vca_release: bad release id {rid!r}")
        nodes = a.get("nodes") or []
        if not nodes:
            raise AnsibleActionFail("vca_release: nodes (the cluster's node list from vca_pack) is required")
        me = task_vars["inventory_hostname"]
        env = _contract_env(nodes, me, rid, task_vars) | {str(k): str(v) for k, v in (a.get("env") or {}).items()}

        probe = self._sh(f'mkdir -p "$HOME/vca/incoming" "$HOME/vca/bin" && echo "home=$HOME" && '
                         f'if [ -d "$HOME/vca/releases/{rid}" ]; then echo have=1; fi; '
                         'command -v python3 >/dev/null 2>&1 || echo nopython=1')
        facts = _kv(probe["stdout"])
        home = facts.get("home") or ""
        if probe["rc"] != 0 or not home:
            raise AnsibleActionFail(f"cannot prepare ~/vca on the node: {probe['stderr'].strip()}")
        bootstrapped = facts.get("nopython") == "1" and bool(a.get("bootstrap_python", True))
        if bootstrapped:  # a bare host: later roles need python3 for their modules
            boot = self._sh("sh -s", in_data=BOOTSTRAP_PYTHON)
            if boot["rc"] != 0:
                msg = (boot["stderr"] or boot["stdout"]).strip()[-300:]
                raise AnsibleActionFail(f"installing python3 on the node failed: {msg}")
        tarball = f"{home}/vca/incoming/{rid}.tar"
        needed = facts.get("have") != "1"
        url = str(a.get("url") or "")
        sent = needed and not url  # with a presigned URL the node downloads it itself
        inline = sent and Path(a["path"]).stat().st_size <= INLINE_MAX
        if sent and not inline:
            self._connection.put_file(str(a["path"]), tarball)

        script = _install_script(a, rid, tarball, nodes, env, url if needed else "", inline).encode()
        # The script travels first on stdin, a small package right after it in the same round trip:
        # `head -c` reads exactly the script and leaves the package for the script's `cat`.
        payload = script + (Path(a["path"]).read_bytes() if inline else b"")
        out = self._sh(f'f=$(mktemp) && head -c {len(script)} > "$f" && sh "$f"; rc=$?; rm -f "$f"; exit $rc',
                       in_data=payload)
        report = _kv(out["stdout"])
        errors = [line[6:] for line in out["stdout"].splitlines() if line.startswith("error=")]
        if out["rc"] != 0 or errors:
            detail = "; ".join(errors) or out["stderr"].strip() or f"exit {out['rc']}"
            result.update(failed=True, msg=f"installing release {rid} failed: {detail}")
            return result
        job = report.get("job", "")
        fetched = report.get("fetched") == "1"
        result["vca_report"] = {"release_id": rid, "sent": sent or fetched, "via": "s3" if fetched else "ssh",
                                "job": job,
                                "job_release": report.get("job_release", "")}
        changed = (sent or fetched or bootstrapped or report.get("release") == "installed"
                   or report.get("contract") == "changed" or report.get("agent") == "updated" or job == "started")
        result.update(
            changed=changed, release_id=rid, sent=sent, bootstrapped=bootstrapped, release=report.get("release"),
            contract=report.get("contract"),
            job=job, job_release=report.get("job_release", rid if job == "started" else ""),
            procs=report.get("procs"),
        )
        if job == "busy":
            result["msg"] = (f"release {rid} installed; the job of release {report.get('job_release')} "
                             "is still running (use restart to replace it)")
        return result

    def _sh(self, cmd: str, in_data: str | bytes | None = None) -> dict[str, Any]:
        res: dict[str, Any] = self._low_level_execute_command(cmd, in_data=in_data, sudoable=False)
        return res


def _kv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            out[key] = value
    return out


def _contract_env(nodes: list[dict[str, Any]], me: str, rid: str, tv: dict[str, Any]) -> dict[str, str]:
    mine = next((n for n in nodes if n["name"] == me), None)
    if mine is None:
        raise AnsibleActionFail(f"{me} has no vca_node_index in the inventory")
    head = next((n for n in nodes if n["role"] == "head"), nodes[0])
    env = {
        "VCA_CLUSTER": str(tv.get("vca_cluster", "")),
        "VCA_NODE_INDEX": str(mine["index"]),
        "VCA_NUM_NODES": str(len(nodes)),
        "VCA_NODE_IPS": "\n".join(n["private_ip"] for n in nodes),
        "VCA_HEAD_IP": head["private_ip"],
        "VCA_ROLE": mine["role"],
        "VCA_PRIVATE_IP": mine["private_ip"],
        "VCA_RELEASE": rid,
    }
    for var, key in (("VCA_SCRATCH", "vca_scratch"), ("VCA_DATA_BUCKET", "vca_data_bucket")):
        if tv.get(key):
            env[var] = str(tv[key])
    return env


def _install_script(a: dict[str, Any], rid: str, tarball: str, nodes: list[dict[str, Any]],
                    env: dict[str, str], url: str, inline: bool) -> str:
    hosts = "".join(f"{n['private_ip']}\t{n['name']}\n" for n in nodes)
    envfile = "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    q = shlex.quote
    launch = " ".join(q(str(x)) for x in (
        rid, a.get("procs", 1), int(a.get("mem_kb") or 0), int(bool(a.get("tmux"))),
        int(bool(a.get("restart"))), int(a.get("grace", 10)),
    ))
    receive = f"cat > {q(tarball)}  # the package follows the script on stdin\n" if inline else ""
    return f"""set -e
{receive}V="$HOME/vca"; T=$(mktemp -d "$V/incoming/.c.XXXXXX")
cat > "$T/agent" <<'{EOF_MARK}'
{AGENT.read_text()}{EOF_MARK}
if ! cmp -s "$T/agent" "$V/bin/vca-node"; then
  chmod 755 "$T/agent"; mv "$T/agent" "$V/bin/vca-node"; echo agent=updated
fi
cat > "$T/cluster.json" <<'{EOF_MARK}'
{json.dumps(nodes, indent=1)}
{EOF_MARK}
cat > "$T/hosts" <<'{EOF_MARK}'
{hosts}{EOF_MARK}
cat > "$T/env" <<'{EOF_MARK}'
{envfile}{EOF_MARK}
{_download(url, tarball)}"$V/bin/vca-node" install {q(rid)} {q(str(a.get("compression", "gz")))} {q(tarball)}
"$V/bin/vca-node" switch {q(rid)}
"$V/bin/vca-node" contract "$T"
"$V/bin/vca-node" launch {launch} "$T/env"
rm -rf "$T"
"""


def _download(url: str, tarball: str) -> str:
    """Shell lines that fetch the release from a presigned URL (curl, wget or python3, what the node has)."""
    if not url:
        return ""
    u, t = shlex.quote(url), shlex.quote(tarball)
    return f"""if [ ! -d "$V/releases/$(basename {t} .tar)" ]; then
  if command -v curl >/dev/null 2>&1; then curl -fsS --retry 3 -o {t} {u}
  elif command -v wget >/dev/null 2>&1; then wget -q -O {t} {u}
  else python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' {u} {t}
  fi || {{ echo "error=downloading the release from the package bucket failed"; exit 1; }}
  echo fetched=1
fi
"""

