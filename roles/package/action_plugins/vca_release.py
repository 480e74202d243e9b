"""Action vca_release: put a packed release on one node and start it (see library/vca_release.py).

The hot path runs no Python on the node: one shell round trip to look, one file transfer over the
already open SSH connection (only when the node lacks the release and the package is big), one shell
round trip that installs the node agent, unpacks, writes the node contract and launches. The script
and the reading of its report are vcloud_ansible.release.install, the contract (environment and files)
vcloud_ansible.release.contract, both shared with `vca inject`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# Packages up to this size ride on the install step's stdin; larger ones go by sftp, streamed from
# disk, so that a worker never holds a big package in memory.
INLINE_MAX = 16 << 20


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        from vcloud_ansible.release import install as release
        from vcloud_ansible.release.contract import Contract, contract_env

        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        a = self._task.args
        rid = str(a["release_id"])
        if not rid.isalnum():
            raise AnsibleActionFail(f"vca_release: bad release id {rid!r}")
        nodes = a.get("nodes") or []
        if not nodes:
            raise AnsibleActionFail("vca_release: nodes (the cluster's node list from vca_pack) is required")
        try:
            # The node's contract variables (vca_scratch, vca_data_bucket) are its hostvars here.
            env = contract_env(nodes, task_vars["inventory_hostname"], rid, str(task_vars.get("vca_cluster", "")),
                               task_vars)
        except ValueError as exc:
            raise AnsibleActionFail(str(exc)) from None
        user_env = {str(k): str(v) for k, v in (a.get("env") or {}).items()}
        env |= user_env

        probe = self._sh(release.probe_command(rid))
        facts = release.kv(probe["stdout"])
        home = facts.get("home") or ""
        if probe["rc"] != 0 or not home:
            raise AnsibleActionFail(f"cannot prepare ~/vca on the node: {probe['stderr'].strip()}")
        tag = f".{uuid.uuid4().hex[:12]}"  # unique: two injects at once never share the file
        tarball = release.package_path(home, rid, tag)
        needed = facts.get("have") != "1"
        url = str(a.get("url") or "")
        sent = needed and not url  # with a presigned URL the node downloads it itself
        inline = sent and Path(a["path"]).stat().st_size <= INLINE_MAX
        if sent and not inline:
            self._connection.put_file(str(a["path"]), tarball)

        job = release.JobOptions(env=user_env, procs=str(a.get("procs", 1)), mem_kb=int(a.get("mem_kb") or 0),
                                 tmux=bool(a.get("tmux")), restart=bool(a.get("restart")),
                                 grace=int(a.get("grace", 10)))
        bootstrap = facts.get("nopython") == "1" and bool(a.get("bootstrap_python", True))
        script = release.install_script(
            rid, str(a.get("compression", "gz")), Contract.of(nodes), env, job, url=url if needed else "",
            receive=release.RECEIVE_INLINE if inline else "", bootstrap=bootstrap, tag=tag,
            settings=job.fingerprint(),
        ).encode()
        # The script travels first on stdin, a small package right after it in the same round trip.
        payload = script + (Path(a["path"]).read_bytes() if inline else b"")
        out = self._sh(release.run_script_command(len(script)), in_data=payload)
        report = release.Report.parse(rid, sent, out["rc"], out["stdout"], out["stderr"])
        if not report.ok:
            result.update(failed=True, msg=report.error_message())
            return result
        result["vca_report"] = report.vca_report()
        f = report.fields
        result.update(
            changed=report.changed, release_id=rid, sent=sent, bootstrapped=report.bootstrapped,
            release=f.get("release"), contract=f.get("contract"), job=report.job,
            job_release=f.get("job_release", rid if report.job == "started" else ""), procs=f.get("procs"),
        )
        if report.job == "busy":
            result["msg"] = report.busy_message()
        return result

    def _sh(self, cmd: str, in_data: str | bytes | None = None) -> dict[str, Any]:
        res: dict[str, Any] = self._low_level_execute_command(cmd, in_data=in_data, sudoable=False)
        return res
