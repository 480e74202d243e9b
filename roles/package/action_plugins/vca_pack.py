"""Action vca_pack: validate and pack a package once, on the control machine (see library/vca_pack.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):  # type: ignore[misc]
    _requires_connection = False  # it never touches a node

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        from vcloud_ansible.errors import VcaError
        from vcloud_ansible.release.inject import check_env
        from vcloud_ansible.release.package import prepare

        args = self._task.args
        src = args.get("src")
        if not src:
            raise AnsibleActionFail("vca_pack: src (the package folder or tarball) is required")
        cache = args.get("cache_dir") or _default_cache((task_vars or {}).get("vca_cluster"))
        try:
            # only checked here (names the shell can export, values text); never returned: the result
            # is recorded in the run's artifacts, and the values may be secrets
            check_env(args.get("env"))
            packed = prepare(Path(os.path.expanduser(str(src))).resolve(), Path(cache))
        except VcaError as exc:
            raise AnsibleActionFail(exc.one_line()) from None
        url = ""
        bucket = args.get("bucket")
        if bucket:  # upload once; nodes pull it themselves
            from vcloud_ansible.remote.s3 import publish

            key = f"{args.get('prefix') or 'vca'}/releases/{packed.path.name}"
            try:
                url = publish(packed.path, str(bucket), key)
            except VcaError as exc:
                raise AnsibleActionFail(exc.one_line()) from None
        result.update(
            changed=False, path=str(packed.path), release_id=packed.release_id, launch=packed.launch,
            size=packed.size, compression=packed.compression, url=url,
            # Once here, not per node: reading every host's vars on every host grows with N squared.
            nodes=_cluster_nodes(task_vars or {}),
        )
        return result


def _default_cache(cluster: str | None) -> str:
    home = Path(os.environ.get("VCA_HOME") or Path.home() / ".vca")
    return str(home / "clusters" / cluster / "releases" if cluster else home / "packages")


def _cluster_nodes(task_vars: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of the cluster (not only the play's hosts), in index order."""
    from vcloud_ansible.release.contract import node_list

    hv = task_vars["hostvars"]
    nodes = node_list({host: hv[host] for host in task_vars["groups"]["all"]})
    if not nodes:
        raise AnsibleActionFail("no host in the inventory has vca_node_index: use a vca inventory "
                                "(`vca inventory`) or set vca_node_index per host")
    return nodes
