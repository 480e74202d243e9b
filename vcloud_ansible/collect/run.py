"""The steps of one collect, in one place, and its typed result.

``Cluster.collect`` (and through it ``vca collect``) runs ``collect_nodes``: every node at once, one ssh
stream each. The ``vca_collect`` Ansible action runs ``collect_one`` for the node it is called for,
over its open connection. ``collect_from_s3`` is ``vca collect --from-s3``. The input checks, the
``--retry-failed`` choice of nodes, the refusal of node folders that are links and the recording of
failures are here and nowhere else; callers only render.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RemoteFailed, UsageError, VcaError
from .layout import Layout, node_dir_name
from .manifest import Manifest, failure, record
from .node_script import compressors
from .outcome import NodeInfo, NodeOutcome
from .remote_path import RemoteSpec

if TYPE_CHECKING:
    from ..node import Node
    from ..state import ClusterState
    from .s3 import S3Outcome, S3Url
    from .transport import Fetch, Shell


@dataclass(frozen=True)
class Request:
    """REMOTE, LOCAL and the compression of one collect, checked before any node is asked."""

    layout: Layout
    spec: RemoteSpec
    compression: str = "auto"

    @classmethod
    def make(cls, remote: str, local: str | Path | None = None, *, suffix: bool = False,
             compression: str = "auto") -> Request:
        """``local`` None: the current folder, or with ``suffix`` REMOTE's name (``out.txt`` ->
        ``out.txt.0``, ...)."""
        layout = Layout.make(local if local is not None else default_local(remote, suffix), suffix)
        layout.check()
        spec = RemoteSpec.parse(remote, suffix)
        compressors(compression)  # a bad choice fails before any node is touched
        return cls(layout, spec, compression)


def default_local(remote: str, suffix: bool) -> str:
    """LOCAL when none is given: ``.``; with ``suffix``, REMOTE's last name."""
    if not suffix:
        return "."
    name = posixpath.basename(remote.rstrip("/"))
    if not name or name in (".", "..", "~") or any(c in name for c in "*?["):
        raise UsageError("--suffix needs LOCAL here", "e.g. vca collect 'out*' results/out --suffix")
    return name


@dataclass
class CollectResult:
    """What a collect from nodes did: one outcome per node asked (node order), and where it all is."""

    layout: Layout
    outcomes: list[NodeOutcome] = field(default_factory=list)
    nothing_to_retry: bool = False  # retry_failed, and no node failed last time: nothing was asked

    @property
    def local(self) -> Path:
        """LOCAL (with ``suffix``, the prefix of the ``LOCAL.<index>`` names)."""
        return self.layout.local

    @property
    def manifest_path(self) -> Path:
        return self.layout.manifest_path

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def succeeded(self) -> list[NodeOutcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[NodeOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def files(self) -> int:
        """Files the nodes that succeeded hold here now."""
        return sum(o.files for o in self.succeeded)

    @property
    def bytes(self) -> int:
        """Bytes written here (new or replaced files), over every node."""
        return sum(o.bytes for o in self.outcomes)

    @property
    def links_skipped(self) -> int:
        return sum(len(o.links_skipped) for o in self.outcomes)

    def raise_for_failures(self) -> None:
        """RemoteFailed naming the nodes that failed (up to five, with why); the rest is collected."""
        if not self.ok:
            raise RemoteFailed.naming("collect", {o.node.dir_name: o.message() for o in self.failed},
                                      len(self.outcomes), "once fixed, run the same command with --retry-failed")


def failed_last_time(layout: Layout, nodes: Sequence[Node]) -> list[Node]:
    """The nodes the manifest lists as failed (``--retry-failed``); refused when there is no manifest."""
    if not layout.manifest_path.exists():
        raise UsageError(f"no manifest at {layout.manifest_path}: nothing was collected into it yet",
                         "run without --retry-failed (same LOCAL and --suffix as before)")
    failed = Manifest.load(layout.manifest_path).failed_nodes
    return [n for n in nodes if n.name in failed]


def collect_nodes(state: ClusterState, nodes: Sequence[Node], request: Request, *, overwrite: bool = False,
                  retry_failed: bool = False, timeout: float | None = None,
                  on_start: Callable[[int], None] | None = None,
                  on_done: Callable[[NodeOutcome], None] | None = None) -> CollectResult:
    """Collect ``request`` from ``nodes`` (the cluster's selection), all at once, one ssh stream each.

    ``on_start(count)``: told how many nodes will be asked, before the first is; ``on_done(outcome)``:
    each node's outcome as it comes, from any thread. Every outcome is recorded in the manifest.
    """
    from .transport import collect_from_nodes

    targets = list(nodes)
    if not targets:
        raise UsageError(f"cluster '{state.name}' has no nodes", "add some with `vca provision N`")
    layout = request.layout
    if retry_failed:
        targets = failed_last_time(layout, targets)
        if not targets:
            return CollectResult(layout, nothing_to_retry=True)
    layout.refuse_links((n.name, n.index) for n in targets)
    if on_start:
        on_start(len(targets))
    outcomes = collect_from_nodes(state, targets, layout, request.spec, overwrite=overwrite,
                                  compression=request.compression, timeout=timeout, on_done=on_done)
    return CollectResult(layout, outcomes)


def inventory_node(host: str, cluster: str | None, index: object, instance_id: object = None) -> NodeInfo:
    """A node as an inventory names it (``inventory_hostname``, ``vca_cluster``, ``vca_node_index``,
    ``vca_instance_id``): its folder is ``<cluster>-<index>`` when both are known, else the host name."""
    i = None if index is None else int(str(index))
    return NodeInfo(node_dir_name(cluster, i, host), i, str(instance_id) if instance_id else None)


def collect_one(node: NodeInfo, remote: str, local: str | Path = ".", *, shell: Shell, fetch: Fetch,
                suffix: bool = False, overwrite: bool = False, retry_failed: bool = False,
                compression: str = "auto") -> NodeOutcome | None:
    """Collect from one node over an open connection (the ``vca_collect`` action's ``shell`` and
    ``fetch``); None when ``retry_failed`` and the node did not fail last time. The outcome is recorded
    in the manifest; so is a failure that raises (a lost connection), for ``--retry-failed``, even when
    no vca front end runs the playbook."""
    from .transport import collect_node

    layout = Layout.make(local, suffix)
    spec = RemoteSpec.parse(remote, layout.suffix)
    layout.prepare()
    if retry_failed and node.dir_name not in Manifest.load(layout.manifest_path).failed_nodes:
        return None
    try:
        return collect_node(layout, spec, node, shell=shell, fetch=fetch, overwrite=overwrite,
                            compression=compression)
    except Exception as exc:
        why = exc.one_line() if isinstance(exc, VcaError) else str(exc)
        record(layout, spec.given, [], {node.dir_name: failure(node, spec.given, why)})
        raise


@dataclass
class S3Result:
    """What ``collect_from_s3`` did: the objects placed, kept or refused, and where."""

    url: S3Url
    layout: Layout
    outcome: S3Outcome

    @property
    def local(self) -> Path:
        return self.layout.local

    @property
    def manifest_path(self) -> Path:
        return self.layout.manifest_path

    @property
    def ok(self) -> bool:
        return not self.outcome.errors

    def raise_for_failures(self) -> None:
        errors = self.outcome.errors
        if not errors:
            return
        shown = "; ".join(list(errors.values())[:3]) + ("; ..." if len(errors) > 3 else "")
        raise RemoteFailed(f"{len(errors)} S3 object(s) not collected: {shown}", [],
                           hint="the others are in LOCAL; once fixed, run the same command again")


def collect_from_s3(url: str, local: str | Path = ".", *, overwrite: bool = False, suffix: bool = False,
                    on_done: Callable[[int, int], None] | None = None) -> S3Result:
    """Download every object below ``url`` (``s3://BUCKET/PREFIX``) into LOCAL, with the manifest."""
    from .s3 import S3Url, collect_s3

    where = S3Url.parse(url)
    layout = Layout.make(local, suffix)
    layout.check()
    return S3Result(where, layout, collect_s3(where, layout, overwrite=overwrite, on_done=on_done))
