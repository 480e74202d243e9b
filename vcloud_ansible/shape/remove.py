"""Which nodes a `vca remove` / `vca resize` takes, and removing them.

The rule for workers (the old `stop_n_workers N`, made safe): the K highest-index workers whose job
is not running go first; workers running a job only with ``force``; the head never unless named;
K above the worker count takes every worker and says so. Removal asks the provider to destroy the
nodes (everything made for them: lab namespaces, mounts, loop devices, processes; EC2 instances),
rewrites the access files and gives the remaining nodes the new node list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import UsageError, VcaError
from ..node import Node
from ..providers.base import Provider
from ..release.inject import JobState
from ..state import ClusterState


class NodeStatus(Protocol):  # cluster.NodeStatus, seen from here without importing the facade
    @property
    def node(self) -> Node: ...
    @property
    def state(self) -> str: ...
    @property
    def job(self) -> JobState | None: ...

Say = Callable[[str], None]
Confirm = Callable[[list[Node]], None]  # called with the nodes about to go; raises to refuse


@dataclass
class RemoveResult:
    """What ``Cluster.remove`` / ``Cluster.resize`` did: nodes removed and added, the nodes left."""

    removed: list[Node] = field(default_factory=list)
    added: list[Node] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    note: str = ""  # one line worth saying (every worker taken, nothing to do)


def _running(s: NodeStatus) -> bool:
    return s.state == "up" and s.job is not None and s.job.job == "running"


def pick_shrink(cluster: str, rows: Sequence[NodeStatus], count: int, force: bool, *,
                workers_only: bool) -> tuple[list[Node], str]:
    """The ``count`` nodes to take: workers, highest index first, idle before running (running only
    with ``force``); with ``workers_only`` False (a resize), then dev nodes and last the head. Returns
    them and a note when fewer candidates exist than ``count``."""
    ranks = ("worker",) if workers_only else ("worker", "dev", "head")
    note = ""
    candidates = sorted((s for s in rows if s.node.role in ranks),
                        key=lambda s: (ranks.index(s.node.role), _running(s), -s.node.index))
    if workers_only and not candidates:
        raise UsageError(f"cluster '{cluster}' has no workers", "see the role column of `vca status`")
    if count > len(candidates) and workers_only:
        note = f"asked for {count} workers, cluster '{cluster}' has {len(candidates)}: removing every worker"
    chosen = candidates[:count]
    busy = [s.node.name for s in chosen if _running(s)]
    if busy and not force:
        raise UsageError(f"{len(chosen) - len(busy)} of the {len(chosen)} nodes to remove are idle; "
                         f"{', '.join(busy)} run{'s' if len(busy) == 1 else ''} a job",
                         "wait for the jobs (`vca wait`), stop them (`vca stop`), or add --force")
    return [s.node for s in chosen], note


def remove_nodes(state: ClusterState, prov: Provider, victims: list[Node],
                 refresh_access: Callable[[list[Node]], object], say: Say) -> list[Node]:
    """Destroy ``victims`` (the caller holds the cluster's lock), rewrite the access files, give the
    nodes left the new node list. Returns the nodes left."""
    from ..release.inject import ReleaseRecord, release_file

    gone = {n.index for n in victims}
    prov.destroy(state, sorted(gone), say)
    left = prov.nodes(state)
    still = [n.name for n in left if n.index in gone]
    refresh_access(left)
    if still:
        raise VcaError(f"could not remove {', '.join(still)}", "run the command again; see `vca status`")
    record = ReleaseRecord.load(release_file(state))
    if record.releases:
        record.forget_nodes(sorted(n.name for n in victims))
        record.save(release_file(state))
    return left
