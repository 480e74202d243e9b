"""jobs: job arrays, one node per row of a CSV, results verified in S3 (vcloud_ansible.jobs)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from ..errors import RemoteFailed, UsageError
from .context import App, pass_app
from .lifecycle import SETTING, _provider_options

BUCKET_HELP = "The array's bucket (env VCA_JOBS_BUCKET). Needed only where the array was not started."


def _codes(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 255:
            raise UsageError(f"--retry-on-exit takes exit codes 1-255 separated by commas, got '{part}'",
                             "e.g. --retry-on-exit 75,143")
        out.append(int(part))
    return out


@click.group()
def jobs() -> None:
    """Job arrays: one node per row of a CSV, each node autonomous once started.

    Each node gets the package, runs the setup script once, runs its row's command, uploads stdout,
    stderr, exit code, timings and the files the row names (default results/) to s3://B/NAME/<job>/
    with a manifest of sha256 sums, reads them back, and only then removes itself.

    \b
      vca jobs run jobs.csv --name sweep --bucket results --max-parallel 4
      vca jobs wait sweep            # to the end; lost nodes retried
      vca jobs status sweep --json
      vca jobs fetch sweep out/      # out/<job>/..., checksums verified
    """


@jobs.command()
@click.argument("csv_file", metavar="JOBS.csv", type=click.Path(path_type=Path))
@click.option("--name", required=True, metavar="NAME",
              help="The array's name (a-z, 0-9, '-'): its cluster and S3 folder.")
@click.option("--bucket", envvar="VCA_JOBS_BUCKET", required=True, metavar="B",
              help="Bucket the results go to (env VCA_JOBS_BUCKET).")
@click.option("--setup", type=click.Path(path_type=Path), metavar="SCRIPT",
              help="A script each node runs once (bash) before its command.")
@click.option("--package", type=click.Path(path_type=Path), metavar="PKG",
              help="A folder every node gets; commands run in it (default: an empty one).")
@click.option("--max-parallel", type=int, metavar="K", help="Never more than K nodes at once (default: all rows).")
@click.option("--retries", default=0, show_default=True, type=int, metavar="R",
              help="Start a lost job (its node gone) again up to R times.")
@click.option("--retry-on-exit", default="", metavar="CODES",
              help="Exit codes that count as lost too (comma separated), e.g. 75,143.")
@click.option("--provider", default="local", type=click.Choice(["local", "ec2"]), show_default=True,
              help="Where the nodes run (local: lab nodes, the instance type is checked and recorded; ec2: one "
                   "instance of the row's type, terminated by its own poweroff once its results are verified). "
                   "The ec2 flags are those of `vca provision` (env VCA_EC2_*).")
@_provider_options
@pass_app
def run(app: App, /, csv_file: Path, name: str, bucket: str, setup: Path | None, package: Path | None,
        max_parallel: int | None, retries: int, retry_on_exit: str, provider: str, **given: Any) -> None:
    """Start one node per row of JOBS.csv; returns once every job has started.

    JOBS.csv has the header instance_type,command and optional columns name (the job's folder; default
    job-N), env (K=V;K=V), timeout (seconds) and files (;-separated paths or globs to upload; default
    results/). The whole file is checked before anything is made; each error names its line.

    \b
      instance_type,command,name,env
      t3.micro,"python3 sim.py --seed 1",seed1,MODE=fast
      t3.micro,"python3 sim.py --seed 2",seed2,MODE=fast;DEBUG=1
    \b
      vca jobs run jobs.csv --name sweep --bucket results --setup setup.sh --package sim/ --max-parallel 2
      vca jobs run jobs.csv --name sweep --bucket results --provider ec2 --region eu-west-1 --image ami-0abc...
    \b
    On ec2 each instance expires (tag vca:expires-at) at its row's timeout plus 75 minutes (no timeout: 24 h),
    and its security group lets SSH in only from this machine's address (or --ssh-cidr, never 0.0.0.0/0).
    """
    from ..jobs import JobArray

    codes = _codes(retry_on_exit)
    # ec2 flags (or VCA_EC2_* in the environment) apply to ec2 only
    settings = {k.removeprefix(SETTING): v for k, v in given.items() if v is not None and v != ()
                } if provider == "ec2" else {}
    st = JobArray(name).run(csv_file, bucket=bucket, setup=setup, package=package, max_parallel=max_parallel,
                            retries=retries, retry_on_exit=codes, provider=provider, settings=settings or None,
                            say=app.say)
    app.say(f"job array '{name}': {len(st.jobs)} jobs started; results go to s3://{bucket}/{name}/ "
            f"(`vca jobs wait {name}` follows it to the end)")


@jobs.command()
@click.argument("csv_file", metavar="JOBS.csv", type=click.Path(path_type=Path))
@click.option("--provider", default="local", type=click.Choice(["local", "ec2"]), show_default=True,
              help="Whose instance types to check against (ec2: DescribeInstanceTypes in the region).")
@click.option("--json", "as_json", is_flag=True, help="The rows as JSON.")
@pass_app
def check(app: App, csv_file: Path, provider: str, as_json: bool) -> None:
    """Check JOBS.csv as `jobs run` would, and list its jobs; nothing is made.

    \b
      vca jobs check jobs.csv
      vca jobs check jobs.csv --provider ec2 --json
    """
    from ..jobs import check_csv

    rows = check_csv(csv_file, provider)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=1))
        return
    for r in rows:
        app.out.print(f"{r.index}\t{r.name}\t{r.instance_type}\t{r.command!r}", markup=False)
    app.say(f"{csv_file}: {len(rows)} job{'s' if len(rows) != 1 else ''}, all well formed")


@jobs.command()
@click.argument("name")
@click.option("--bucket", envvar="VCA_JOBS_BUCKET", metavar="B", help=BUCKET_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON document: counts and every job.")
@pass_app
def status(app: App, name: str, bucket: str | None, as_json: bool) -> None:
    """Every job of the array: pending, setting up, running, uploading, done(code), failed(code), lost.

    Read from the bucket and the provider, so it works from any machine with the same credentials.

    \b
      vca jobs status sweep
      vca jobs status sweep --bucket results --json
    """
    from ..jobs import JobArray

    st = JobArray(name, bucket=bucket).status()
    if as_json:
        click.echo(json.dumps(st.to_json(), indent=1))
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("job", "index", "state", "attempt", "node", "seconds"):
        table.add_column(col)
    for j in st.jobs:
        took = f"{j.ended_at - j.started_at:.1f}" if j.started_at and j.ended_at else "-"
        table.add_row(j.name, str(j.index), j.label, str(j.attempt or "-"), j.node or "-", took)
    app.out.print(table)
    app.say(", ".join(f"{v} {k}" for k, v in sorted(st.counts.items())))


def _summary(app: App, name: str, counts: dict[str, int], seconds: float) -> None:
    app.say(f"job array '{name}' ended in {seconds:.0f} s: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))


@jobs.command()
@click.argument("name")
@click.option("--timeout", default=86400, show_default=True, type=click.IntRange(1), metavar="SECONDS",
              help="Give up after this long (the jobs go on).")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.2), metavar="SECONDS",
              help="Seconds between looks.")
@pass_app
def wait(app: App, name: str, timeout: int, interval: float) -> None:
    """Follow the array to the end: start what waits, retry lost nodes (up to --retries), remove
    ended nodes. Exit 1 when a job failed or was lost for good.

    \b
      vca jobs wait sweep
    """
    from ..jobs import JobArray

    started = time.monotonic()
    st = JobArray(name).follow(until="finished", say=app.say, poll=interval, timeout=timeout)
    _summary(app, name, st.counts, time.monotonic() - started)
    bad = {j.name: j.label for j in st.jobs if j.state != "done"}
    if bad:
        raise RemoteFailed.naming("jobs", bad, len(st.jobs), noun="jobs")


@jobs.command()
@click.argument("name")
@click.option("--failed", is_flag=True, help="Failed jobs too, not only lost ones.")
@pass_app
def retry(app: App, name: str, failed: bool) -> None:
    """Start the lost jobs (with --failed, the failed ones too) again on new nodes, now.

    \b
      vca jobs retry sweep --failed
    """
    from ..jobs import JobArray

    again = JobArray(name).retry(app.say, failed=failed)
    app.say(f"started again: {', '.join(again)}" if again else "nothing to start again")


@jobs.command()
@click.argument("name")
@click.argument("local", type=click.Path(path_type=Path))
@click.option("--bucket", envvar="VCA_JOBS_BUCKET", metavar="B", help=BUCKET_HELP)
@click.option("--overwrite", is_flag=True, help="Replace local files whose content differs.")
@pass_app
def fetch(app: App, name: str, local: Path, bucket: str | None, overwrite: bool) -> None:
    """Bring every finished job's files to LOCAL/<job>/, each checked against the job's manifest
    (sha256 and size), recorded in LOCAL/vca-manifest.json like `vca collect`.

    \b
      vca jobs fetch sweep out/
    """
    from ..jobs import JobArray

    res = JobArray(name, bucket=bucket).fetch(local, overwrite=overwrite)
    app.say(f"fetched {res.files} files ({res.bytes / 1e6:.1f} MB) of {len(res.jobs)} jobs into {res.local}"
            + (f"; not finished: {', '.join(res.missing)}" if res.missing else ""))


@jobs.command()
@click.argument("name")
@pass_app
def cancel(app: App, name: str) -> None:
    """Remove every node of the array now (running jobs end unfinished); results already in the bucket stay.

    \b
      vca jobs cancel sweep
    """
    from ..jobs import JobArray

    removed = JobArray(name).cancel(app.say)
    app.say(f"job array '{name}' cancelled; {len(removed)} node{'s' if len(removed) != 1 else ''} removed")


@jobs.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list.")
@pass_app
def list_(app: App, as_json: bool) -> None:
    """The job arrays started from this VCA_HOME.

    \b
      vca jobs list
    """
    from ..jobs import list_arrays

    arrays = list_arrays()
    if as_json:
        click.echo(json.dumps(arrays, indent=1))
        return
    for a in arrays:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(a["created_at"])) if a.get("created_at") else "-"
        app.out.print(f"{a['name']}\ts3://{a['bucket']}/{a['name']}/\t{when}")
