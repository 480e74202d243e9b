"""compile: build sources on the cluster's dev node and bring the artifacts back."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .context import App, pass_app


@click.command()
@click.argument("src", required=False, type=click.Path(path_type=Path))
@click.option("--build", "build", default=None, metavar="CMD",
              help="The build command, run in SRC on the node (bash). Default: SRC's own vcloud-launch, else "
                   "detected: SConstruct -> scons -j$(nproc), Makefile -> make -j$(nproc), CMakeLists.txt -> "
                   "cmake -S . -B build && cmake --build build.")
@click.option("--artifact", "-a", "artifacts", multiple=True, metavar="PATH",
              help="What to bring back: a file, folder or glob relative to SRC on the node (repeatable). "
                   "Files land in --out by their name (folders keep theirs, globs' matches are relative "
                   "to the folder before the glob).")
@click.option("--out", "-o", "out", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Where the artifacts land, with vca-compile-manifest.json (sizes, sha256). Default: the "
                   "current folder (with --package: only the package).")
@click.option("--keep", is_flag=True,
              help="Keep a dev node this compile made: the next compile sends only the files that changed "
                   "and rebuilds only what depends on them (ccache on the node). Without it the node is removed.")
@click.option("--package", "package", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Also write an inject-ready package: the artifacts plus --launch as vcloud-launch.")
@click.option("--launch", "launch", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="The script that becomes the package's vcloud-launch (with --package).")
@click.option("--force", is_flag=True, help="Replace a --package folder that is not empty.")
@click.option("--timeout", default=0, type=click.IntRange(0), metavar="SECONDS",
              help="Seconds the build may take (default: no limit).")
@click.option("--json", "as_json", is_flag=True, help="Print what happened as JSON (files sent, artifacts, timings).")
@pass_app
def compile(app: App, src: Path | None, build: str | None, artifacts: tuple[str, ...], out: Path | None,
            keep: bool, package: Path | None, launch: Path | None, force: bool, timeout: int,
            as_json: bool) -> None:
    """Build SRC on the cluster's dev node and bring the artifacts back.

    Uses the cluster's node with role dev; when there is none, makes one (with setup role toolchain:
    g++, make, cmake, scons, ccache, boost) and removes it afterwards unless --keep. Sends SRC with
    rsync (only what changed on a kept node; .git and .gitignore'd files stay here), runs the build
    with its log streamed here live, fetches the --artifact paths with checksums, and exits with the
    build's status. The build folder and the ccache are on /scratch when the node has it, else under
    ~/vca/build.

    \b
      vca compile examples/compile --artifact hello --out bin/
      vca compile src/ --build 'make -j4 app' --artifact app --keep
      vca compile examples/compile --artifact hello --package deploy/ \\
          --launch examples/compile/deploy-launch && vca inject deploy/
    """
    from ..compile.plan import CompileRequest
    from ..errors import UsageError

    if src is None:
        raise UsageError("SRC is missing", "vca compile SRC [--artifact PATH ...]; see vca compile --help")
    request = CompileRequest(src, build, list(artifacts), out, keep, package, launch, force, timeout or None)
    request.check()  # bad input refused before the cluster is even looked at
    result = app.cluster().compile(request, say=app.say, log=lambda line: app.err.out(line, highlight=False),
                                   console=app.err)
    if as_json:
        app.out.print_json(json.dumps(result.to_json()))
    names = ", ".join(a.rel for a in result.artifacts)
    where = []
    if result.out is not None and result.artifacts:
        where.append(f"into {result.out}")
    if result.package is not None:
        where.append(f"package {result.package} (vca inject {result.package})")
    got = f"; {len(result.artifacts)} artifact{'s' if len(result.artifacts) != 1 else ''} ({names}) " + \
        " and ".join(where) if result.artifacts else ""
    app.say(f"built on {result.node} in {result.seconds.get('build', 0):.1f} s "
            f"({result.compiler_invocations} compiler invocation{'s' if result.compiler_invocations != 1 else ''})"
            f"{got}")
