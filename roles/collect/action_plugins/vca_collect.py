"""Action vca_collect: fetch result files from one node (see library/vca_collect.py).

The hot path runs no Python on the node: one shell round trip lists the files with their sha256 and
writes one compressed tarball, one file transfer over the already open connection brings it back, one
round trip removes it. Checking, verifying and placing happen here on the controller, in
vcloud_ansible.collect.plan (shared with `vca collect`), and each node records its files in the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        from vcloud_ansible.collect import plan as collect
        from vcloud_ansible.collect.transport import collect_node
        from vcloud_ansible.errors import VcaError

        tv = task_vars or {}
        a = self._task.args
        host = str(tv.get("inventory_hostname", ""))
        index = tv.get("vca_node_index")
        node = collect.NodeInfo(
            collect.node_dir_name(tv.get("vca_cluster"), None if index is None else int(index), host),
            None if index is None else int(index), tv.get("vca_instance_id") or None)
        try:
            layout = collect.Layout.make(str(a.get("dest") or "."), bool(a.get("suffix")))
            spec = collect.RemoteSpec.parse(str(a.get("remote") or ""), layout.suffix)
            layout.prepare()
            if a.get("retry_failed") and node.dir_name not in collect.Manifest.load(
                    layout.manifest_path).failed_nodes:
                result.update(skipped=True, msg=f"{node.dir_name} did not fail last time")
                return result
        except VcaError as exc:
            raise AnsibleActionFail(exc.one_line()) from None
        try:
            outcome = collect_node(
                layout, spec, node, shell=self._shell, fetch=self._fetch,
                overwrite=bool(a.get("overwrite")), compression=str(a.get("compression") or "auto"))
        except AnsibleConnectionFailure as exc:
            # Recorded for --retry-failed even when no vca front end runs this playbook.
            collect.record(layout, spec.given, [], {node.dir_name: collect.failure(node, spec.given, str(exc))})
            raise
        except VcaError as exc:
            collect.record(layout, spec.given, [], {node.dir_name: collect.failure(node, spec.given,
                                                                                   exc.one_line())})
            raise AnsibleActionFail(exc.one_line()) from None
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
