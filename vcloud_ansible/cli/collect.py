"""collect: bring result files back from the nodes (or from S3), verified, with a manifest."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from ..collect.node_script import COMPRESSIONS
from ..errors import UsageError
from .context import App, node_option, parse_indexes, pass_app

if TYPE_CHECKING:
    from ..collect.run import CollectResult, S3Result


@click.command()
@click.argument("remote", required=False, metavar="REMOTE")
@click.argument("local", required=False, metavar="[LOCAL]")
@node_option(metavar="N",
              help="Only these nodes: index, list or range (1,3 or 2-5), name (<cluster>-2), role (head, dev, "
                   "workers) or address; repeatable. Default: every node.")
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
        from ..collect.run import collect_from_s3

        if local is not None:
            raise UsageError("with --from-s3 give only LOCAL", "vca collect --from-s3 s3://BUCKET/PREFIX LOCAL")
        _render_s3(app, collect_from_s3(from_s3, remote or ".", overwrite=overwrite, suffix=suffix))
        return
    if not remote:
        raise UsageError("REMOTE is missing", "vca collect REMOTE [LOCAL]; see vca collect --help")
    with contextlib.ExitStack() as stack:
        progress: list[Callable[[str, str | None], None]] = []

        def start(count: int) -> None:  # every node at once: a bar on a terminal, failures as they come
            progress.append(stack.enter_context(app.node_progress("collect", count)))

        result = app.cluster().collect(
            remote, local, indexes=parse_indexes(nodes) or None, suffix=suffix, overwrite=overwrite,
            retry_failed=retry_failed, compression=compression, timeout=timeout or None, on_start=start,
            on_done=lambda o: progress[0](o.node.dir_name, None if o.ok else o.message()))
    _render(app, result)


def _render(app: App, result: CollectResult) -> None:
    if result.nothing_to_retry:
        app.say(f"nothing to retry: no node failed last time (manifest {result.manifest_path})")
        return
    n = len(result.outcomes)
    where = result.local if not result.layout.suffix else f"{result.local}.N"
    line = (f"collected {result.files} file{'s' if result.files != 1 else ''} from {len(result.succeeded)} of "
            f"{n} node{'s' if n != 1 else ''} into {where} ({result.bytes / 1e6:.1f} MB written); "
            f"manifest {result.manifest_path}")
    if result.links_skipped:
        line += f"; skipped {result.links_skipped} link(s) pointing outside the collected files"
    app.say(line)
    result.raise_for_failures()


def _render_s3(app: App, result: S3Result) -> None:
    out, url = result.outcome, result.url
    app.say(f"collected {out.files} object{'s' if out.files != 1 else ''} from s3://{url.bucket}/{url.prefix} "
            f"into {result.local} ({out.bytes / 1e6:.1f} MB written, {out.kept} unchanged); "
            f"manifest {result.manifest_path}")
    result.raise_for_failures()
