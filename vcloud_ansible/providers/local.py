"""Provider ``local``: nodes are systemd-nspawn machines of the local lab (vcloud_ansible.lab)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..lab.manager import Lab
from ..lab.registry import LabNode
from ..node import Node, role_for
from ..state import ClusterState
from .base import Say
from .settings import Setting


class LocalProvider:
    name = "local"
    # The lab's own configuration (VCA_LAB_*: bridge, subnet, folders) is machine-wide, not per cluster.
    settings: tuple[Setting, ...] = ()

    def __init__(self, lab: Lab | None = None) -> None:
        self.lab = lab or Lab()

    def check(self) -> None:
        self.lab.check_host()

    def create(self, state: ClusterState, count: int, say: Say, role: str | None = None) -> list[Node]:
        made = self.lab.create(state.name, count, state.public_key(), str(state.home), say,
                               lambda index: role or role_for(index))
        return [self._node(n, running=True, host_key=key) for n, key in made]

    def replace(self, state: ClusterState, gone: list[Node], say: Say,
                ready: Callable[[list[Node]], None] | None = None) -> list[Node]:
        """Healable: remove what is left of the ``gone`` nodes and boot new ones under the same indexes
        and roles (fresh host keys, maybe other addresses). The dead machines are gone already, so a
        failing ``ready`` leaves the new ones in place (`vca status` shows them)."""
        self.lab.destroy(state.name, str(state.home), [n.index for n in gone])
        roles = {n.index: n.role for n in gone}
        made = self.lab.create(state.name, len(gone), state.public_key(), str(state.home), say,
                               lambda index: roles[index], indexes=sorted(roles))
        new = [self._node(n, running=True, host_key=key) for n, key in made]
        if ready is not None:
            ready(new)
        return new

    def nodes(self, state: ClusterState) -> list[Node]:
        out = []
        for n in self.lab.nodes(state.name):
            # A guest whose systemd-nspawn was killed still runs (and serves SSH): it is not down, only
            # unsupervised (a reboot will not bring it back). Probing its namespace costs a subprocess,
            # paid only for such nodes.
            if n.stopped:
                out.append(self._node(n, running=False, supervised=True))
                continue
            supervised = self.lab.is_running(n)
            out.append(self._node(n, running=supervised or self.lab.guest_running(n), supervised=supervised))
        return out

    def destroy(self, state: ClusterState, indexes: list[int] | None, say: Say) -> list[Node]:
        gone = self.lab.destroy(state.name, str(state.home), indexes)
        if gone:
            say(f"removed {len(gone)} lab node{'s' if len(gone) != 1 else ''}")
        return [self._node(n, running=False) for n in gone]

    def power_off(self, state: ClusterState, indexes: list[int], say: Say) -> list[Node]:
        gone = self.lab.power_off(state.name, str(state.home), indexes)
        if gone:
            say(f"powered off {len(gone)} lab node{'s' if len(gone) != 1 else ''} (disks kept)")
        return [self._node(n, running=False) for n in gone]

    def power_on(self, state: ClusterState, indexes: list[int], say: Say) -> list[Node]:
        made = self.lab.power_on(state.name, str(state.home), indexes, say)
        return [self._node(n, running=True, host_key=key or None) for n, key in made]

    def inventory_source(self, state: ClusterState) -> Path | None:
        return None

    @staticmethod
    def _node(n: LabNode, running: bool, host_key: str | None = None, supervised: bool | None = None) -> Node:
        return Node(
            index=n.index, name=n.name, address=n.ip, private_ip=n.ip, role=n.role or role_for(n.index),
            state="stopped" if n.stopped else "running" if running else "down", host_key=host_key,
            details={"created": n.created, "netns": n.netns,
                     "supervised": running if supervised is None else supervised},
        )
