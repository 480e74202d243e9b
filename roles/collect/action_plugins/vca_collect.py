"""Action vca_collect: fetch result files from one node (see library/vca_collect.py).

The hot path runs no Python on the node: one shell round trip lists the files with their sha256 and
writes one compressed tarball, one file transfer over the already open connection brings it back, one
round trip removes it. The steps are vcloud_ansible.collect.run.collect_one (checking, verifying,
placing and the manifest, shared with `vca collect`); this action only hands it the connection and
turns the node's outcome into a task result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        from vcloud_ansible.collect.run import collect_one, inventory_node
        from vcloud_ansible.errors import VcaError

        tv = task_vars or {}
        a = self._task.args
        node = inventory_node(str(tv.get("inventory_hostname", "")), tv.get("vca_cluster"),
                              tv.get("vca_node_index"), tv.get("vca_instance_id"))
        try:
            outcome = collect_one(
                node, str(a.get("remote") or ""), str(a.get("dest") or "."), shell=self._shell,
                fetch=self._fetch, suffix=bool(a.get("suffix")), overwrite=bool(a.get("overwrite")),
                retry_failed=bool(a.get("retry_failed")), compression=str(a.get("compression") or "auto"))
        except VcaError as exc:  # connection failures propagate as they are: Ansible marks the host
            raise AnsibleActionFail(exc.one_line()) from None
        if outcome is None:
            result.update(skipped=True, msg=f"{node.dir_name} did not fail last time")
            return result
        result["vca_report"] = outcome.report()
        result.update(changed=bool(outcome.new or outcome.replaced), **outcome.report())
        if not outcome.ok:
            result.update(failed=True, msg=outcome.message())
        elif outcome.links_skipped:
            result["msg"] = (f"skipped {len(outcome.links_skipped)} link(s) that point outside the collected "
                             f"files, e.g. {outcome.links_skipped[0]}")
        return result

    def _shell(self, cmd: str, stdin: str | None) -> tuple[int, str, str]:
        res = self._low_level_execute_command(cmd, in_data=stdin, sudoable=False)
        return int(res["rc"]), str(res["stdout"]), str(res["stderr"])

    def _fetch(self, remote: str, local: Path) -> None:
        self._connection.fetch_file(remote, str(local))
