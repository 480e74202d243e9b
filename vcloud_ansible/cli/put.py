"""put: send a local file or folder to the nodes (the old StarCluster put)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import click

from .context import App, node_option, parse_indexes, pass_app


@click.command()
@click.argument("local", type=click.Path(path_type=Path))
@click.argument("remote")
@node_option(metavar="N",
              help="Only these nodes (index, list or range; repeatable). Default: every node.")
@click.option("--timeout", default=0, type=click.IntRange(0), metavar="SECONDS",
              help="Seconds one node may take before it counts as failed (default: no limit).")
@pass_app
def put(app: App, local: Path, remote: str, nodes: tuple[str, ...], timeout: int) -> None:
    """Send the file or folder LOCAL to every node, at REMOTE.

    REMOTE is absolute, ~/..., or relative to the home folder. Ending with / (or, for a file, naming a
    folder that exists on the node), LOCAL goes into it; else it becomes REMOTE (a file is replaced at
    once, an existing folder is merged into: the same command twice lands in the same place). Each
    node checks what it received against the sha256 sent.
    Nothing is ever written inside ~/vca, where the releases (running or not) and their jobs live.

    One ssh stream per node, all nodes at once (gzip -1 unless the nodes are local lab nodes). Nodes
    that fail are named and the exit code is non-zero; the others have the files.

    \b
      vca put data.csv data/              # ~/data/data.csv on every node
      vca put inputs/ /scratch/inputs -n 1-3
    """
    with contextlib.ExitStack() as stack:
        progress: list[Callable[[str, str | None], None]] = []

        def start(count: int) -> None:  # every node at once: a bar on a terminal, failures as they come
            progress.append(stack.enter_context(app.node_progress("put", count)))

        result = app.cluster().put(local, remote, indexes=parse_indexes(nodes) or None, timeout=timeout or None,
                                   on_start=start,
                                   on_done=lambda o: progress[0](o.node.name, None if o.ok else o.error))
    ok = result.succeeded
    n = len(result.outcomes)
    where = sorted({o.path for o in ok})
    app.say(f"put {result.files} file{'s' if result.files != 1 else ''} ({result.bytes / 1e6:.1f} MB sent to each) "
            f"on {len(ok)} of {n} node{'s' if n != 1 else ''}"
            + (f" at {where[0]}" if len(where) == 1 else "") + f" ({result.seconds:.1f} s)")
    result.raise_for_failures()
