"""What a compile will do, checked before any node is made or touched.

A ``CompileRequest`` holds the user's input; ``check()`` refuses bad input with one ``UsageError``
(missing SRC, no way to build, a --package folder that is not empty, ...). ``build_command`` picks how
the build runs, in this order: ``--build CMD``; the package's own executable ``vcloud-launch``;
detected from SConstruct (``scons -j$(nproc)``), Makefile (``make -j$(nproc)``), CMakeLists.txt
(cmake configure + build in ``build/``). An explicit --build wins over a vcloud-launch in SRC: the
user said what to run.

The node-side scripts are plain POSIX sh (bash for the build command itself): nothing runs Python on
the node. The build folder is ``/scratch/vca-build/<key>`` when the node has a writable /scratch, else
``~/vca/build/<key>``; the ccache lives beside it (``.../ccache``). ``<key>`` is SRC's folder name plus
a hash of its absolute path on this machine, so that two projects called ``app`` do not share one.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

DETECTED = (
    ("SConstruct", "scons -j$(nproc)"),
    ("Makefile", "make -j$(nproc)"),
    ("makefile", "make -j$(nproc)"),
    ("GNUmakefile", "make -j$(nproc)"),
    ("CMakeLists.txt", "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j$(nproc)"),
)
"""Build files vca recognises in SRC, first match wins, and the command each implies."""

LAUNCH_NAMES = ("vcloud-launch", "vca-launch")
SOURCES_LIST = ".vca-sources"  # on the node: the files the last compile sent (to remove those deleted here)
MANIFEST_NAME = "vca-compile-manifest.json"
EXIT_MARK = "vca:build-exit:"
START_MARK = "vca:build-start"
NODIR_MARK = "vca:build-nodir"

# Lines of a build log that are one compiler invocation: a compiler command with -c (make, scons,
# plain scripts; ccache in front or not), or CMake's "Building CXX object" in its default output.
_COMPILE_RE = re.compile(
    r"(^|[\s/])(ccache\s+)?(\S*/)?(g\+\+|c\+\+|gcc|cc|clang\+\+|clang)(-\d+)?\s.*\s-c(\s|$)"
    r"|Building (C|CXX) object ")
# The first line of a failed build worth showing: the compiler's (or the linker's) own error line.
_ERROR_RE = re.compile(r"(: (fatal )?error:|error: |\*\*\* |undefined reference|Error \d+)")
_KEY_RE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class CompileRequest:
    """``vca compile SRC [--build CMD] [--artifact PATH ...] [--out DIR] [--keep] [--package DIR --launch FILE]``."""

    src: Path
    build: str | None = None
    artifacts: list[str] = field(default_factory=list)
    out: Path | None = None  # None: the current folder, unless --package is given (then only the package)
    keep: bool = False
    package: Path | None = None
    launch: Path | None = None
    force: bool = False
    timeout: float | None = None  # seconds the build may take (None: no limit)

    def check(self) -> None:
        """Refuse bad input before anything is made; resolves paths."""
        src = Path(os.path.abspath(self.src.expanduser()))
        if not src.exists():
            raise UsageError(f"SRC {self.src} does not exist", "give the folder with the sources")
        if not src.is_dir():
            raise UsageError(f"SRC {self.src} is not a folder", "give the folder with the sources")
        self.src = src
        if self.build is not None and not self.build.strip():
            raise UsageError("--build is empty", "give the build command, e.g. --build 'make -j4'")
        for a in self.artifacts:
            check_artifact(a)
        if (self.package is None) != (self.launch is None):
            raise UsageError("--package and --launch go together",
                             "vca compile SRC --artifact BIN --package DIR --launch FILE")
        if self.package is not None and not self.artifacts:
            raise UsageError("--package needs at least one --artifact to put in it")
        if self.launch is not None:
            launch = Path(os.path.abspath(self.launch.expanduser()))
            if not launch.is_file():
                raise UsageError(f"--launch {self.launch} is not a file",
                                 "give the script that becomes the package's vcloud-launch")
            self.launch = launch
        if self.package is not None:
            self.package = Path(os.path.abspath(self.package.expanduser()))
            refuse_nonempty(self.package, self.force)
        if self.out is not None:
            self.out = Path(os.path.abspath(self.out.expanduser()))
            if self.out.exists() and not self.out.is_dir():
                raise UsageError(f"--out {self.out} is a file", "give a folder (it is created when missing)")
        elif self.package is None:
            self.out = Path(os.path.abspath("."))
        build_command(self)  # no way to build: refused here

    @property
    def key(self) -> str:
        """The build folder's name on the node: SRC's name and a hash of its path here."""
        digest = hashlib.sha256(str(self.src).encode()).hexdigest()[:8]
        return f"{_KEY_RE.sub('_', self.src.name)[:40] or 'src'}-{digest}"

    def excluded(self) -> list[str]:
        """rsync filter rules: what never travels (VCS data, build state of a local build, our own
        outputs when they lie inside SRC); plus the .gitignore files' patterns."""
        rules = ["- /.git/", "- .sconsign*.dblite", f"- /{SOURCES_LIST}", f"- /{MANIFEST_NAME}", ":- .gitignore"]
        for inside in (self.out, self.package):
            if inside is not None and inside != self.src and inside.is_relative_to(self.src):
                rules.insert(0, f"- /{inside.relative_to(self.src).as_posix()}/")
        return rules


def check_artifact(path: str) -> str:
    """An artifact is a path (or glob) relative to the build folder, staying inside it."""
    if not path or not path.strip() or "\0" in path or "\n" in path:
        raise UsageError(f"bad --artifact {path!r}", "give a path relative to SRC on the node, e.g. bin/app")
    if path.startswith(("/", "~")):
        raise UsageError(f"--artifact {path} must be relative to the build folder (SRC on the node)")
    norm = posixpath.normpath(path)
    if norm == "." or norm == ".." or norm.startswith("../"):
        raise UsageError(f"--artifact {path} leaves the build folder", "give a path inside SRC, e.g. bin/app")
    return norm


def refuse_nonempty(folder: Path, force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--package {folder} is a file", "give a folder")
    if not force and folder.is_dir() and any(folder.iterdir()):
        raise UsageError(f"--package {folder} is not empty", "give an empty or new folder, or --force to replace it")


def build_command(req: CompileRequest) -> tuple[str, str]:
    """(command, how it was chosen): --build, the package's vcloud-launch, or detected."""
    if req.build is not None:
        return req.build, "--build"
    for name in LAUNCH_NAMES:
        launch = req.src / name
        if launch.is_file() and os.access(launch, os.X_OK):
            return f"./{name}", name
    for name, command in DETECTED:
        if (req.src / name).is_file():
            return command, name
    raise UsageError(
        f"no way to build {req.src}: no executable vcloud-launch, no --build, and no SConstruct, Makefile "
        "or CMakeLists.txt",
        "give the command with --build 'CMD'")


# -- the node side --------------------------------------------------------------------------------------

def probe_script(key: str) -> str:
    """Pick the build folder (/scratch when writable, else ~/vca/build), create it, say what is there."""
    k = shlex.quote(key)
    return (
        "set -u\n"
        'if [ -d /scratch ] && [ -w /scratch ]; then R=/scratch/vca-build; else R="$HOME/vca/build"; fi\n'
        f'mkdir -p "$R/{key}" "$R/ccache" || exit 1\n'
        f'printf "dir=%s\\n" "$R/"{k}\n'
        'printf "ccache=%s\\n" "$R/ccache"\n'
        'printf "rsync=%s\\n" "$(command -v rsync || true)"\n'
        'printf "cpus=%s\\n" "$(nproc 2>/dev/null || echo 1)"\n'
    )


def parse_probe(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def build_script(folder: str, ccache_dir: str, command: str) -> str:
    """Run on the node with the list of source files on stdin (one per line): remove the files an
    earlier compile sent that are gone here, then run ``command`` in ``folder`` with ccache first on
    PATH, stdout and stderr as one log, and end with the exit mark."""
    d, c = shlex.quote(folder), shlex.quote(ccache_dir)
    return f"""set -u
cd {d} || {{ printf '%s\\n' '{NODIR_MARK}'; exit 0; }}
L={SOURCES_LIST}
cat > "$L.new"
sort -u -o "$L.new" "$L.new"
if [ -f "$L" ]; then sort -u "$L" > "$L.old"; else : > "$L.old"; fi
comm -23 "$L.old" "$L.new" | while IFS= read -r f; do rm -f -- "./$f"; done
mv -f "$L.new" "$L"; rm -f "$L.old"
# PYTHONUNBUFFERED: scons (Python) writes each line as it goes, not in blocks, through the pipe.
export CCACHE_DIR={c} CCACHE_BASEDIR={d} VCA_BUILD_DIR={d} PYTHONUNBUFFERED=1
[ -d /usr/lib/ccache ] && export PATH="/usr/lib/ccache:$PATH"
printf '%s\\n' '{START_MARK}'
bash -c {shlex.quote(command)} < /dev/null 2>&1
rc=$?
printf '\\n%s%s\\n' '{EXIT_MARK}' "$rc"
"""


def is_compile_line(line: str) -> bool:
    return bool(_COMPILE_RE.search(line))


def error_line(lines: list[str]) -> str | None:
    """The first line of the log that reads like the compiler's or the linker's error."""
    for line in lines:
        if _ERROR_RE.search(line):
            return line.strip()
    return None
