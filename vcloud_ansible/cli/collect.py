"""collect: bring result files back from the nodes (or from S3), verified, with a manifest."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

import click

from ..collect.plan import COMPRESSIONS
from ..errors import RemoteFailed, UsageError
from .context import App, parse_indexes, pass_app

if TYPE_CHECKING:
    from ..cluster import Cluster
    from ..collect.plan import Layout, NodeOutcome, RemoteSpec
    from ..node import Node


@click.command()
@click.argument("remote", required=False, metavar="REMOTE")
@click.argument("local", required=False, metavar="[LOCAL]")
@click.option("--node", "-n", "nodes", multiple=True, metavar="N",
              help="Only these nodes (index, list or range; repeatable). Default: every node.")
@click.option("--suffix", is_flag=True,
              help="Old flat form: LOCAL.0, LOCAL.1, ... (REMOTE without a glob: LOCAL.N is that file or "
                   "that folder's copy); manifest LOCAL.manifest.json.")
@click.option("--overwrite", is_flag=True, help="Replace local files that exist with other content.")
@click.option("--retry-failed", is_flag=True,
              help="Only the nodes that failed last time (from the manifest); files already held are not sent.")
@click.option("--from-s3", "from_s3", metavar="s3://BUCKET/PREFIX",
              help="Download what nodes wrote to S3 instead (then the only argument is LOCAL). "
                   "Credentials: the usual AWS chain; endpoint: AWS_ENDPOINT_URL.")
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="auto", show_default=True,
              help="How files travel. auto: uncompressed from local lab nodes (they share this machine's CPU), "
                   "else zstd -1 when both ends have it, else gzip -1.")
@click.option("--timeout", default=0, type=click.IntRange(0), metavar="SECONDS",
              help="Seconds one node may take before it counts as failed (default: no limit).")
@pass_app
def collect(app: App, remote: str | None, local: str | None, nodes: tuple[str, ...], suffix: bool,
            overwrite: bool, retry_failed: bool, from_s3: str | None, compression: str, timeout: int) -> None:
    """Copy REMOTE from every node into LOCAL/<cluster>-<index>/ (LOCAL defaults to .).

    REMOTE is relative to the release of the node's last job (the one that wrote the results,
    even after an inject without --restart moved ~/vca/current on; ~/vca/current when no job ran)
    unless it is absolute or starts with ~/; the manifest names that release. Globs are expanded on
    the node; folders are copied whole; a trailing / copies a folder's contents. Local paths are
    relative to the part of REMOTE before its first glob: `results` gives LOCAL/c-0/results/...,
    `logs/*.txt` gives LOCAL/c-0/a.txt.

    Every file is checked against the node's sha256 and listed in LOCAL/vca-manifest.json (node index,
    hostname, instance id, remote path, size, sha256, time). A local file with other content is kept
    and that node fails, unless --overwrite. Names never land outside LOCAL, and nothing is written
    through a link below LOCAL; links that point outside the collected files are skipped, globs'
    matches included (links inside them arrive as copies). Files already held unchanged
    are not sent again. Nodes that fail are named and the exit code is non-zero; the rest is
    collected: once fixed, run the same command with --retry-failed.

    One ssh stream per node, all nodes at once. The same through Ansible:
    `vca run collect remote=out.txt dest=results` or playbooks/collect.yml with ansible-playbook.

    \b
      vca collect out.txt results/            # results/<cluster>-N/out.txt from every node
      vca collect 'logs/*.log' results/ -n 2  # node 2 only (the old scpget)
      vca collect out.txt out --suffix        # out.0, out.1, ... (the old scpgetall)
      vca collect /var/log/syslog logs/
      vca collect --from-s3 s3://bucket/run1 results/
    """
    if from_s3:
        if local is not None:
            raise UsageError("with --from-s3 give only LOCAL", "vca collect --from-s3 s3://BUCKET/PREFIX LOCAL")
        _from_s3(app, from_s3, remote or ".", overwrite, suffix)
        return
    if not remote:
        raise UsageError("REMOTE is missing", "vca collect REMOTE [LOCAL]; see vca collect --help")
    from ..collect.plan import Layout, RemoteSpec

    layout = Layout.make(local if local is not None else _default_local(remote, suffix), suffix)
    layout.check()
    spec = RemoteSpec.parse(remote, suffix)
    cluster = app.cluster()
    indexes = parse_indexes(nodes)
    targets = cluster.select(indexes or None)
    if not targets:
        raise UsageError(f"cluster '{cluster.name}' has no nodes", "add some with `vca provision N`")
    if retry_failed:
        targets = _failed_last_time(layout, targets)
        if not targets:
            app.say(f"nothing to retry: no node failed last time (manifest {layout.manifest_path})")
            return
    layout.refuse_links((n.name, n.index) for n in targets)
    outcomes = _collect(app, cluster, targets, layout, spec, overwrite, compression, timeout)
    _finish(app, layout, outcomes)


def _default_local(remote: str, suffix: bool) -> str:
    if not suffix:
        return "."
    name = posixpath.basename(remote.rstrip("/"))
    if not name or name in (".", "..", "~") or any(c in name for c in "*?["):
        raise UsageError("--suffix needs LOCAL here", "e.g. vca collect 'out*' results/out --suffix")
    return name


def _failed_last_time(layout: Layout, targets: list[Node]) -> list[Node]:
    from ..collect.plan import Manifest

    if not layout.manifest_path.exists():
        raise UsageError(f"no manifest at {layout.manifest_path}: nothing was collected into it yet",
                         "run without --retry-failed (same LOCAL and --suffix as before)")
    failed = Manifest.load(layout.manifest_path).failed_nodes
    return [n for n in targets if n.name in failed]


def _collect(app: App, cluster: Cluster, targets: list[Node], layout: Layout, spec: RemoteSpec,
             overwrite: bool, compression: str, timeout: int) -> list[NodeOutcome]:
    """Every node at once, one ssh stream each; progress on a terminal, failures as they come."""
    from ..collect.transport import collect_from_nodes

    with app.node_progress("collect", len(targets)) as done:
        return collect_from_nodes(cluster.state, targets, layout, spec, overwrite=overwrite,
                                  compression=compression, timeout=timeout or None,
                                  on_done=lambda o: done(o.node.dir_name, None if o.ok else o.message()))


def _finish(app: App, layout: Layout, outcomes: list[NodeOutcome]) -> None:
    done = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    files = sum(o.files for o in done)
    written = sum(o.bytes for o in outcomes)
    links = sum(len(o.links_skipped) for o in outcomes)
    where = layout.local if not layout.suffix else f"{layout.local}.N"
    line = (f"collected {files} file{'s' if files != 1 else ''} from {len(done)} of {len(outcomes)} node"
            f"{'s' if len(outcomes) != 1 else ''} into {where} ({written / 1e6:.1f} MB written); "
            f"manifest {layout.manifest_path}")
    if links:
        line += f"; skipped {links} link(s) pointing outside the collected files"
    app.say(line)
    if failed:
        named = [f"{o.node.dir_name} ({o.message()})" for o in failed[:5]]
        if len(failed) > 5:
            named.append(f"and {len(failed) - 5} more")
        raise RemoteFailed(f"collect failed on {len(failed)} of {len(outcomes)} nodes: {', '.join(named)}",
                           [o.node.dir_name for o in failed],
                           hint="once fixed, run the same command with --retry-failed")


def _from_s3(app: App, url_text: str, local: str, overwrite: bool, suffix: bool) -> None:
    from ..collect.plan import Layout
    from ..collect.s3 import S3Url, collect_s3

    url = S3Url.parse(url_text)
    layout = Layout.make(local, suffix)
    layout.check()
    out = collect_s3(url, layout, overwrite=overwrite)
    app.say(f"collected {out.files} object{'s' if out.files != 1 else ''} from s3://{url.bucket}/{url.prefix} "
            f"into {layout.local} ({out.bytes / 1e6:.1f} MB written, {out.kept} unchanged); "
            f"manifest {layout.manifest_path}")
    if out.errors:
        shown = "; ".join(list(out.errors.values())[:3]) + ("; ..." if len(out.errors) > 3 else "")
        raise RemoteFailed(f"{len(out.errors)} S3 object(s) not collected: {shown}", [],
                           hint="the others are in LOCAL; once fixed, run the same command again")
