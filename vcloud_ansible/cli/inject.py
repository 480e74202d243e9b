"""inject, mkpkg, logs, attach, stop, wait: code on the nodes and the jobs it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import VcaError
from ..release.inject import parse_env
from .context import SECONDS, App, Seconds, exec_argv, node_option, parse_indexes, pass_app, single_index
from .render import summarize


@click.command()
@click.argument("package", type=click.Path(path_type=Path))
@node_option(metavar="N",
              help="Only these nodes: index, list or range (1,3 or 2-5), name (<cluster>-2), role (head, dev, "
                   "workers) or address; repeatable. Default: every node.")
@click.option("-e", "--env", "env", multiple=True, metavar="KEY=VALUE",
              help="Environment variable for the job, kept as text byte for byte; repeatable.")
@click.option("--restart", is_flag=True, help="Stop a running job first (SIGTERM, SIGKILL after --grace).")
@click.option("--procs", default="1", show_default=True, metavar="N|auto",
              help="Processes per node; each gets VCA_PROC_INDEX. auto: one per core.")
@click.option("--mem", default=None, metavar="SIZE", help="Address-space limit per process, e.g. 512M, 2G.")
@click.option("--tmux", is_flag=True,
              help="Run each process in tmux so that `vca attach --tmux` can join it.")
@click.option("--grace", default=10, show_default=True, type=click.IntRange(0, 3600),
              help="Seconds between SIGTERM and SIGKILL when stopping a job.")
@click.option("--bucket", envvar="VCA_PACKAGE_BUCKET", default=None, metavar="NAME",
              help="S3 bucket (env VCA_PACKAGE_BUCKET): upload the package once, nodes download it through a "
                   "presigned URL instead of receiving it over SSH. Credentials: the standard AWS chain.")
@pass_app
def inject(app: App, package: Path, nodes: tuple[str, ...], env: tuple[str, ...], restart: bool,
           procs: str, mem: str | None, tmux: bool, grace: int, bucket: str | None) -> None:
    """Put PACKAGE on the nodes and run its launch script there, detached.

    PACKAGE is a folder or a tarball (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) with an executable
    `vcloud-launch` (or `vca-launch`) at its root. Each node unpacks it into
    ~/vca/releases/<id> (the id is its content hash) and starts it with the VCA_* environment;
    nodes that already hold the release receive nothing. A job still running keeps running,
    untouched, unless --restart.

    \b
      vca inject examples/hello
      vca inject my_code/ -e ROUNDS=10 --procs auto --restart
    """
    job_env = parse_env(env)  # KEY=VALUE pairs; Cluster.inject checks the rest, before anything is sent
    cluster = app.cluster()
    with app.node_progress("inject") as done:
        result = cluster.inject(package, env=job_env, procs=procs, mem=mem, tmux=tmux, restart=restart,
                                grace=grace, bucket=bucket, nodes=parse_indexes(nodes) or None,
                                on_start=lambda targets: done.start(len(targets)),
                                on_done=lambda n: done(n.node, None if n.ok else n.message))
    for note in result.notes:
        app.say(note)
    result.raise_for_failures("inject")
    reports = result.reports()
    rid = result.release_id
    other = [h for h, r in sorted(reports.items()) if r.get("other_settings")]
    started = sum(1 for r in reports.values() if r["job"] == "started")
    if other and not started:  # nothing the user asked for happened: a script must be able to tell
        running = sum(1 for h in other if reports[h]["job"] == "busy")
        state = f"is already running on {running}" if running == len(other) else f"already ran on {len(other)}"
        raise VcaError(f"release {rid} {state} node{'s' if len(other) != 1 else ''} with other settings "
                       "(-e/--procs/--mem/--tmux): nothing changed",
                       "use --restart to apply them (it stops the job first)")
    if reports:
        sent = sum(1 for r in reports.values() if r["sent"])
        how = "fetched from the package bucket by" if any(r.get("via") == "s3" for r in reports.values()) \
            else "sent to"
        had = f" (the other {len(reports) - sent} had it)" if sent < len(reports) else ""
        app.say(f"release {rid}: {how} {sent} of {len(reports)} nodes{had}, job started on "
                f"{started} ({result.elapsed:.1f} s)")
    stopped = [h for h, r in sorted(reports.items()) if r.get("stopped")]
    if stopped:
        app.say(say_stopped(reports, stopped))
    for line in rerun_lines(rid, reports):
        app.say(line)
    if other:
        app.say(f"release {rid} runs (or ran) with other settings on {', '.join(other)}: left as it is "
                "(use --restart to apply them)")
    busy = [h for h, r in sorted(reports.items()) if r["job"] == "busy" and r["job_release"] != rid]
    if busy:
        app.say(f"a job of an earlier release is still running on {', '.join(busy)}: "
                "the new release is installed but not started there (use --restart)")
    app.say("see `vca status` and `vca logs N`")


def say_stopped(reports: dict[str, dict[str, Any]], nodes: list[str]) -> str:
    """`--restart` names the jobs it stopped: "stopped the job of release X on n0, n1"."""
    by: dict[str, list[str]] = {}
    for h in nodes:
        by.setdefault(str(reports[h]["stopped"]), []).append(h)
    return "; ".join(f"stopped the job of release {rel} on {', '.join(hs)}" for rel, hs in by.items())


def rerun_lines(rid: str, reports: dict[str, dict[str, Any]]) -> list[str]:
    """What a re-inject of the same release left as it was: still running, or already ran (with which exit
    codes), so the user knows nothing ran again."""
    same = [h for h, r in sorted(reports.items()) if r["job"] in ("busy", "unchanged")
            and r["job_release"] == rid and not r.get("other_settings")]
    lines = []
    running = [h for h in same if reports[h]["job"] == "busy"]
    if running:
        lines.append(f"release {rid} is already running on {', '.join(running)}: left as it is "
                     "(--restart runs it again)")
    ran = [h for h in same if reports[h]["job"] == "unchanged"]
    if ran:
        codes = sorted({str(reports[h].get("job_exit") or "?") for h in ran})
        exited = f"exited {codes[0]}" if len(codes) == 1 else f"exit codes {', '.join(codes)}"
        lines.append(f"release {rid} already ran on {len(ran)} node{'s' if len(ran) != 1 else ''} ({exited}): "
                     "--restart runs it again")
    return lines


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Tarball to write, or a folder for the default name (default ./<folder>-<id>.tar.gz).")
@click.option("--force", is_flag=True, help="Replace an existing file at the output path.")
def mkpkg(folder: Path, output: Path | None, force: bool) -> None:
    """Make a reproducible package tarball of FOLDER (VCS folders and .vcaignore entries left out).

    The output must be a regular file outside FOLDER; an existing one with other bytes is replaced only
    with --force. It is written to a temporary file beside it and renamed, never half-written.
    """
    from ..release.package import mkpkg as make

    packed = make(folder, output, force=force)
    click.echo(f"{packed.path}  release {packed.release_id}  {packed.size} bytes")


@click.command()
@click.argument("node", required=False, default="0", metavar="[N]")
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the log grows (Ctrl-C to stop).")
@click.option("--tail", default=100, show_default=True, type=click.IntRange(0), help="Lines to show.")
@click.option("--proc", default=0, show_default=True, type=click.IntRange(0), help="Process index.")
@click.option("--init", "init", is_flag=True, help="Show the output of the node's init script instead.")
@pass_app
def logs(app: App, node: str, follow: bool, tail: int, proc: int, init: bool) -> None:
    """Show the job log of node N (default 0), or with --init the output of its init script."""
    index = single_index(node, "logs")
    if init:
        from ..storage.init_script import LOGS_COMMAND

        exec_argv(app.cluster().ssh_argv(index, LOGS_COMMAND))
    exec_argv(app.cluster().logs_argv(index, proc=proc, tail=tail, follow=follow))


@click.command()
@click.argument("node", required=False, default="0", metavar="[N]")
@click.option("--tmux", "use_tmux", is_flag=True,
              help="Join the job's tmux session (the job must have been injected with --tmux).")
@click.option("--proc", default=0, show_default=True, type=click.IntRange(0), help="Process index.")
@pass_app
def attach(app: App, node: str, use_tmux: bool, proc: int) -> None:
    """Follow the live log of node N's job; with --tmux, join its terminal (detach: Ctrl-b d)."""
    index = single_index(node, "attach")
    exec_argv(app.cluster().attach_argv(index, proc=proc, tmux=use_tmux))


@click.command()
@node_option(metavar="N",
              help="Only these nodes (index, range, name, role or address). Default: every node.")
@click.option("--grace", default=10, show_default=True, type=click.IntRange(0, 3600),
              help="Seconds between SIGTERM and SIGKILL.")
@pass_app
def stop(app: App, nodes: tuple[str, ...], grace: int) -> None:
    """Stop the running jobs (SIGTERM, then SIGKILL after --grace seconds)."""
    results = app.cluster().stop(grace, parse_indexes(nodes) or None)
    app.say(f"stopped jobs: {summarize(results)}")


@click.command("wait")
@node_option(metavar="N",
              help="Wait for these nodes only (index, list or range; repeatable). Default: every node.")
@click.option("--timeout", default=3600.0, show_default=True, type=SECONDS,
              help="Give up after this many seconds (exit 1).")
@click.option("--interval", default=2.0, show_default=True, type=Seconds(at_least=0.2),
              help="Seconds between looks at the nodes.")
@pass_app
def wait(app: App, nodes: tuple[str, ...], timeout: float, interval: float) -> None:
    """Wait until no node runs a job; exit non-zero naming nodes whose job failed or that are down.

    While waiting it names the nodes still running and what they run (their newest process), and a
    node whose log has not grown nor its process changed for 30 s or more. On a terminal after every
    look; otherwise only when that changes.

    \b
      vca inject my_code/ && vca wait && vca collect out/ results/
      vca wait --node 0          # the head's client; the workers serve forever
    """
    import sys
    import time

    from .waiting import WaitReporter

    report = WaitReporter(app.say, every_look=sys.stderr.isatty(), clock=time.monotonic)
    result = app.cluster().wait(timeout, interval, indexes=parse_indexes(nodes) or None, on_look=report)
    app.say(f"jobs finished on {'all ' if not nodes else ''}{len(result.nodes)} node"
            f"{'s' if len(result.nodes) != 1 else ''}")
