"""Collect result files from nodes: the logic shared by the ``vca_collect`` action and ``vca collect``.

Per node, one shell round trip resolves REMOTE on the node (unless absolute or ``~/``, relative to the
release of the node's last job, ``~/vca/job``, which wrote the results even when ``~/vca/current`` has
moved on; ``~/vca/current`` when no job ran; globs expanded by the node's shell; folders recursive),
lists every file with its sha256 and makes ONE compressed tarball of the files the controller lacks.
``vca collect`` reads it from the same ssh stream, right behind the listing; the Ansible action
(playbooks/collect.yml) has it written to a temporary file that it fetches over its open connection.
Both transports are in vcloud_ansible.collect.transport; nothing runs Python on the node.

On the controller the local ``tar`` unpacks the archive into an empty staging folder as it arrives
(no Python in the data path; GNU tar drops leading ``/``, refuses ``..`` and never writes through a link
it made). Nothing is then taken by its member name: vca walks the staging folder without following
links and takes exactly the regular files the node listed, each checked against the node's sha256, under
a local name vca derives from the listed remote path (no ``..``, no absolute path, no write through a
link that leaves the node's folder). Each is moved into place under the overwrite rule (same content:
fine; other content: kept, the node fails, unless ``overwrite``) and gets an entry in the manifest
beside the results.

Links on the node: a link to a file inside the collected tree travels as a copy of that file (no link is
ever created locally); links that point outside it, and links to folders, are skipped and reported. The
same holds for what REMOTE itself matches: a match that leads out of the folder REMOTE names (the part
before its first glob) through a link is skipped and reported, and that folder must not lead out of the
base (the release, or home) through a link. Locally, vca never writes through a link below LOCAL: a
node's folder, or a folder in it, that is a link is refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import posixpath
import re
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EnvironmentProblem, UsageError, VcaError

MANIFEST_NAME = "vca-manifest.json"
MANIFEST_FORMAT = "vca-collect-manifest/1"
COMPRESSIONS = ("auto", "zstd", "gz", "none")
_GLOB_CHARS = frozenset("*?[")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
_EMPTY_READS = 5


# Unpack the node's archive into the given empty staging folder; returns "" or what went wrong.
Extract = Callable[[Path], str]


class CollectError(VcaError):
    """Collecting from one node failed (nothing matched, unsafe name, conflict, bad archive)."""


class Conflict(CollectError):
    """A local file exists with other content and ``overwrite`` is off."""


class UnsafePath(CollectError):
    """A remote name that would land outside the node's local folder."""


# -- what to fetch, and where it lands ------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteSpec:
    """REMOTE as the node's shell sees it: a base folder and a pattern relative to it.

    ``base`` is ``release`` (the release of the node's last job, else ``~/vca/current``), ``home`` or
    ``root`` (``/``). ``prefix`` is the part of the pattern without glob characters that local paths
    are relative to: the matches' folder, or with ``contents`` the match itself (REMOTE ``.``, ``dir/``,
    or ``--suffix`` without a glob, the old ``scp -r node:dir LOCAL.0`` form).
    """

    given: str
    base: str
    pattern: str
    prefix: str
    contents: bool

    @classmethod
    def parse(cls, remote: str, suffix: bool = False) -> RemoteSpec:
        if not remote or not remote.strip() or "\0" in remote or "\n" in remote:
            raise UsageError(f"bad REMOTE path {remote!r}", "give a file, folder or glob on the nodes")
        text = remote
        if text == "~" or text.startswith("~/"):
            base, text = "home", text[2:] or "."
        elif text.startswith("/"):
            base, text = "root", text.lstrip("/") or "."
        else:
            base = "release"
        pattern = posixpath.normpath(text)
        globbed = any(c in _GLOB_CHARS for c in pattern)
        contents = pattern == "." or remote.endswith("/") or (suffix and not globbed)
        if contents and not globbed:
            prefix = pattern
        else:
            parts = pattern.split("/")
            fixed: list[str] = []
            for part in parts[:-1]:
                if any(c in _GLOB_CHARS for c in part):
                    break
                fixed.append(part)
            prefix = "/".join(fixed) or "."
        return cls(remote, base, pattern, prefix, contents and not globbed)


def node_dir_name(cluster: str | None, index: int | None, host: str) -> str:
    """``<cluster>-<index>`` when the inventory says both, else the inventory host name."""
    return f"{cluster}-{index}" if cluster and index is not None else host


@dataclass(frozen=True)
class Layout:
    """Where results land: ``LOCAL/<cluster>-<index>/`` with LOCAL/vca-manifest.json, or with ``suffix``
    the old flat form ``LOCAL.<index>`` with ``LOCAL.manifest.json`` beside it."""

    local: Path
    suffix: bool = False

    @classmethod
    def make(cls, local: str | Path, suffix: bool = False) -> Layout:
        path = Path(os.path.abspath(Path(local).expanduser()))
        if suffix and path == path.parent:
            raise UsageError("--suffix needs a LOCAL name such as results/out (files land in out.0, out.1, ...)")
        return cls(path, suffix)

    @property
    def base(self) -> Path:
        """The folder holding the manifest; manifest paths are relative to it."""
        return self.local.parent if self.suffix else self.local

    @property
    def manifest_path(self) -> Path:
        if self.suffix:
            return self.local.parent / f"{self.local.name}.manifest.json"
        return self.local / MANIFEST_NAME

    def node_root(self, dir_name: str, index: int | None) -> Path:
        if self.suffix:
            return self.local.with_name(f"{self.local.name}.{index if index is not None else dir_name}")
        return self.local / dir_name

    def check(self) -> None:
        """LOCAL must be (or become) a folder; with ``suffix`` its parent must be."""
        folder = self.base
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"LOCAL {folder} is a file", "give a folder (it is created when missing)")

    def prepare(self) -> None:
        """Create LOCAL (with ``suffix`` its folder) and make sure this machine can write there."""
        self.check()
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".vca-probe-", dir=self.base)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise unwritable(self.base, exc) from None

    def refuse_links(self, nodes: Iterable[tuple[str, int | None]]) -> None:
        """Refuse, before any node is asked, a node's folder (``LOCAL/<cluster>-<i>`` or ``LOCAL.<i>``)
        that is a link: vca never writes through one. ``nodes``: (dir name, index)."""
        for dir_name, index in nodes:
            try:
                refuse_link(self.node_root(dir_name, index))
            except UnsafePath as exc:
                raise UsageError(exc.message, exc.hint) from None


def refuse_link(path: Path | str) -> None:
    """Raise ``UnsafePath`` when ``path`` is a link (vca writes into real folders only)."""
    with contextlib.suppress(OSError):
        if os.path.islink(path):
            raise UnsafePath(f"{path} is a link (to {os.readlink(path)}): vca never writes through links",
                             "remove it or collect into another LOCAL")


def unwritable(where: Path | str, exc: OSError) -> VcaError:
    """The one-line error for a LOCAL this machine cannot write into."""
    if exc.errno == errno.ENOSPC:
        return EnvironmentProblem(f"the local disk is full at {where} ({free_bytes(where)} bytes free)",
                                  "free space and run the same command again")
    why = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied"}.get(exc.errno or 0, exc.strerror or str(exc))
    return EnvironmentProblem(f"cannot write into {where}: {why}", "pick a LOCAL this machine can write into")


def free_bytes(where: Path | str) -> int:
    """Bytes an unprivileged writer may still use at ``where`` (or its nearest existing parent)."""
    path = Path(where)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def local_rel(remote_path: str, prefix_path: str, allow_self: bool) -> str:
    """The local path (relative to the node's folder) of ``remote_path`` found under ``prefix_path``.

    Raises ``UnsafePath`` for anything that is not plainly below the prefix: ``..`` or ``.`` components,
    empty components, NUL. ``allow_self``: the prefix is itself a file (``--suffix`` with one file), ``""``.
    """
    if "\0" in remote_path:
        raise UnsafePath(f"refused remote name {remote_path!r}: it contains a NUL byte")
    if remote_path == prefix_path:
        if allow_self:
            return ""
        raise UnsafePath(f"refused remote name {remote_path!r}: it is the collected folder itself")
    head = prefix_path.rstrip("/") + "/"
    if not remote_path.startswith(head):
        raise UnsafePath(f"refused remote name {remote_path!r}: it is not below {prefix_path}")
    rel = remote_path[len(head):]
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"refused remote name {remote_path!r}: it would land outside the node's folder")
    return rel


def join_remote(base: str, rel: str) -> str:
    """The node shell's ``$B/$m``: ``rel`` under the absolute ``base``; ``.`` is the base itself."""
    if rel in ("", "."):
        return base
    return base.rstrip("/") + "/" + rel


# -- the node side: one shell round trip ----------------------------------------------------------------

_NODE_SCRIPT = r"""set -u
umask 077
M=
# Records go to stdout, or when streaming to the file $M: flush sends "<bytes>\n" and the records, so the
# controller knows exactly where the archive starts.
out() { if [ -n "$M" ]; then printf '%s=%s\0' "$1" "$2" >> "$M"; else printf '%s=%s\0' "$1" "$2"; fi; }
flush() { if [ -n "$M" ]; then printf '%s\n' "$(wc -c < "$M")"; cat "$M"; M=; fi; }
fail() { out error "$1"; flush; [ -n "${T:-}" ] && rm -rf "$T"; exit 0; }
for tool in find sha256sum tar sed grep xargs realpath mktemp; do
  command -v "$tool" >/dev/null 2>&1 || fail "the node lacks $tool (GNU find, tar, coreutils are needed)"
done
V="$HOME/vca"
mkdir -p "$V/incoming" 2>/dev/null || fail "cannot create $V/incoming"
# Left by a controller that went away before it could clean up (it removes its own at once).
find "$V/incoming" -maxdepth 1 -name '.collect.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null
T=$(mktemp -d "$V/incoming/.collect.XXXXXX") || fail "cannot create a temporary folder in $V/incoming"
if [ @STREAM@ = 1 ]; then M="$T/meta"; : > "$M"; fi
out host "$(hostname 2>/dev/null || uname -n)"
out tmp "$T"
# Whether path $1 is $2 or below it (both resolved).
inside() { [ "$2" = / ] || [ "$1" = "$2" ] || [ "${1#"$2"/}" != "$1" ]; }
# The release below ~/vca/releases that the resolved path $1 lies in, if any.
release_of() {
  VR=$(realpath -e -- "$V/releases" 2>/dev/null) || return 0
  case "$1/" in "$VR"/*/*) x=${1#"$VR"/}; printf '%s' "${x%%/*}" ;; esac
}
PAT=@PATTERN@
# Pathname expansion only (IFS is empty, so no field splitting): the node's shell expands the glob.
matches() { IFS=''; set -- $PAT; unset IFS; for m in "$@"; do [ -e "$m" ] || [ -L "$m" ] && return 0; done; return 1; }
FROM=
case @BASE@ in
  release)
    # The release of the node's last job: that job wrote the results, even when ~/vca/current has
    # moved on to a release installed later (an inject without --restart). No job yet: current.
    J=
    [ -L "$V/job" ] && J=$(basename "$(readlink "$V/job")")
    if [ -n "$J" ] && [ -d "$V/releases/$J" ]; then
      cd "$V/releases/$J" || fail "cannot enter $V/releases/$J"; FROM=job
    else
      cd "$V/current" 2>/dev/null ||
        fail "no release on this node (nothing injected yet): give REMOTE as an absolute path or ~/..."
      FROM=current
    fi ;;
  home) cd "$HOME" || fail "cannot enter $HOME" ;;
  *) cd / || fail "cannot enter /" ;;
esac
B=$(pwd -P)
out base "$B"
# The folder REMOTE names (its part before the first glob) must stay inside the base folder: a link on
# the way out is not followed, whatever the form of REMOTE.
P=@PREFIX@
case "$P" in .) R0=$B ;; *) R0=$(realpath -e -- "${B%/}/$P" 2>/dev/null) || R0= ;; esac
if [ -n "$R0" ] && ! inside "$R0" "$B"; then
  out link "${B%/}/$P"
  fail "nothing collected: @SHOWN@ leads outside $B through a link (to $R0); give the real path"
fi
REL=$(release_of "${R0:-$B}")
out release "$REL"
out release_from "$FROM"
: > "$T/files"
n=0
s=0
IFS=''
set -- $PAT
unset IFS
for m in "$@"; do
  [ -e "$m" ] || [ -L "$m" ] || continue
  case "$m" in .) r=$B ;; *) r="${B%/}/$m" ;; esac
  # A match is taken where it really is, inside the named folder, or skipped like any link leading out.
  R=$(realpath -e -- "$r" 2>/dev/null) || R=
  if [ -z "$R" ] || [ -z "$R0" ] || ! inside "$R" "$R0"; then
    printf 'link=%s\0' "$r" >> "$T/skipped"; s=$((s + 1)); continue
  fi
  n=$((n + 1))
  out root "$r"
  find -H "$r" -path "$T" -prune -o -type f -print0 >> "$T/files" 2>>"$T/err"
  find -H "$r" -path "$T" -prune -o -type l -print0 > "$T/links" 2>>"$T/err"
  # A link travels as a copy of its file when that file is inside the collected tree; else it is skipped.
  xargs -0 -r sh -c '
    R=$1; F=$2; shift 2
    for l; do
      t=$(realpath -e -- "$l" 2>/dev/null) || t=
      if [ -n "$t" ] && [ -f "$t" ] && [ "${t#"$R"/}" != "$t" ]; then printf "%s\0" "$l" >> "$F"
      else printf "link=%s\0" "$l"; fi
    done' sh "$R" "$T/files" < "$T/links" >> "$T/skipped"
done
if [ -s "$T/skipped" ]; then if [ -n "$M" ]; then cat "$T/skipped" >> "$M"; else cat "$T/skipped"; fi; fi
if [ "$n" = 0 ] && [ "$s" -gt 0 ]; then
  fail "nothing collected: every match of @SHOWN@ leads outside ${R0:-$B} through a link (skipped $s)"
fi
if [ "$n" = 0 ] && [ "$FROM" = job ]; then
  C=$(realpath -e -- "$V/current" 2>/dev/null) || C=
  if [ -n "$C" ] && [ "$C" != "$B" ] && cd "$C" && matches; then
    W="the current release ${C##*/} (whose job did not run) has it"
    fail "nothing matches @SHOWN@ in release $J, where this node's last job ran; $W: collect ~/vca/current/@SHOWN@"
  fi
fi
[ "$n" -gt 0 ] || fail "nothing matches @SHOWN@ on this node"
if [ -s "$T/err" ]; then fail "cannot list: $(tail -c 300 "$T/err" | tr '\n' ' ')"; fi
# Records "<sha256>  <path>" NUL-terminated, as sha256sum -z writes them. OpenSSL uses the CPU's SHA
# instructions (several times faster than coreutils); its output is line based, so not for names with newlines.
if command -v openssl >/dev/null 2>&1 && [ "$(tr -dc '\n' < "$T/files" | wc -c)" = 0 ]; then
  xargs -0 -r openssl dgst -sha256 -r < "$T/files" 2>"$T/err" |
    sed 's/^\([0-9a-f]\{64\}\) \*/\1  /' | tr '\n' '\0' > "$T/sums"
else
  xargs -0 -r sha256sum -z -- < "$T/files" > "$T/sums" 2>"$T/err"
fi
[ -s "$T/err" ] && fail "cannot read: $(tail -c 300 "$T/err" | tr '\n' ' ')"
if [ -n "$M" ]; then sed -z 's/^/file=/' "$T/sums" >> "$M"; else sed -z 's/^/file=/' "$T/sums"; fi
printf '%s' @SKIP@ > "$T/skip"
if [ -s "$T/skip" ]; then grep -zvxFf "$T/skip" "$T/sums" > "$T/send"; else cp "$T/sums" "$T/send"; fi
sed -z 's/^[0-9a-f]\{64\}  \///' "$T/send" > "$T/names"
if [ -s "$T/names" ]; then
  C=none
  for c in @COMPRESSORS@; do
    case $c in
      zstd) command -v zstd >/dev/null 2>&1 && { C=zstd; break; } ;;
      gz) command -v gzip >/dev/null 2>&1 && { C=gz; break; } ;;
      none) C=none; break ;;
    esac
  done
  case $C in zstd) set -- -I "zstd -1 -q" ;; gz) set -- -I "gzip -1" ;; *) set -- ;; esac
  # -h, --hard-dereference: every listed file travels as a whole file; --no-recursion: exactly those.
  if [ @STREAM@ = 1 ]; then
    # The archive follows the records on stdout: the controller unpacks while the node still sends.
    out comp "$C"
    out done 1
    out stream 1
    flush
    tar -C / --null --no-recursion -h --hard-dereference -T "$T/names" "$@" -cf - 2>"$T/err"
    rc=$?
    [ "$rc" -le 1 ] || tail -c 300 "$T/err" >&2
    rm -rf "$T"
    exit "$rc"
  fi
  tar -C / --null --no-recursion -h --hard-dereference -T "$T/names" "$@" -cf "$T/data" 2>"$T/err"
  rc=$?
  [ "$rc" -le 1 ] || fail "tar failed: $(tail -c 300 "$T/err" | tr '\n' ' ')"
  out comp "$C"
  out archive "$T/data"
fi
out done 1
flush
if [ @STREAM@ = 1 ]; then rm -rf "$T"; fi
"""


def node_script(spec: RemoteSpec, skip: Iterable[tuple[str, str]], compressors: Sequence[str],
                stream: bool = False) -> str:
    """The shell script one node runs (``sh -s``): prints NUL-terminated ``key=value`` records.

    ``skip``: (sha256, remote path) of files the controller already holds; the node leaves those out of
    the archive when they are unchanged. ``compressors``: the node takes the first it has. Without
    ``stream`` the archive is left in a temporary file (``archive=``) for the controller to fetch; with
    it, the archive follows the record ``stream=1`` on stdout.
    """
    skip_text = "".join(f"{sha}  {path}\n" for sha, path in skip
                        if _SHA_RE.match(sha) and "\n" not in path)  # grep -z patterns are lines
    words = " ".join(c for c in compressors if c in ("zstd", "gz", "none")) or "none"
    values = {"BASE": spec.base, "PATTERN": shlex.quote(spec.pattern), "PREFIX": shlex.quote(spec.prefix),
              "SHOWN": _sh_double_quoted(spec.given),
              "SKIP": shlex.quote(skip_text), "COMPRESSORS": words, "STREAM": "1" if stream else "0"}
    # One pass, so that a value holding "@...@" is never substituted again.
    return re.sub(r"@([A-Z]+)@", lambda m: values[m.group(1)], _NODE_SCRIPT)


def _sh_double_quoted(text: str) -> str:
    """``text`` for inside a double-quoted shell string: no expansion."""
    return "".join("\\" + c if c in '"$`\\' else c for c in text)


@dataclass
class Probe:
    """What a node's script reported."""

    host: str = ""
    tmp: str = ""
    base: str = ""
    roots: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # remote path -> sha256
    links: list[str] = field(default_factory=list)  # skipped links
    archive: str = ""
    compression: str = "none"
    error: str = ""
    complete: bool = False
    stream: bool = False  # the archive follows on the same stdout
    release: str = ""  # the release below ~/vca/releases the files came from ("" when none)
    release_from: str = ""  # for a relative REMOTE: "job" (the last job's release) or "current"

    @classmethod
    def parse(cls, stdout: str) -> Probe:
        p = cls()
        for record in stdout.split("\0"):
            key, sep, value = record.partition("=")
            key = key.strip("\n")
            if not sep:
                continue
            if key == "file":
                sha, sep2, path = value.partition("  ")
                if sep2 and _SHA_RE.match(sha):
                    p.files[path] = sha
            elif key == "root":
                p.roots.append(value)
            elif key == "link":
                p.links.append(value)
            elif key == "comp":
                p.compression = value
            elif key == "done":
                p.complete = True
            elif key == "stream":
                p.stream = True
            elif key in ("host", "tmp", "base", "archive", "error", "release", "release_from"):
                setattr(p, key, value)
        return p


# -- the controller side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    dir_name: str  # <cluster>-<index>
    index: int | None
    instance_id: str | None = None


@dataclass
class NodeOutcome:
    """One node's collection: manifest entries of files placed (or found identical), and problems."""

    node: NodeInfo
    hostname: str = ""
    entries: list[dict[str, Any]] = field(default_factory=list)
    new: int = 0
    replaced: int = 0
    same: int = 0
    kept: int = 0  # already held with the right content: not even transferred
    bytes: int = 0  # bytes placed (new or replaced)
    archive_bytes: int = 0
    links_skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    release: str | None = None  # the release (below ~/vca/releases) the files came from

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def files(self) -> int:
        return self.new + self.replaced + self.same + self.kept

    def message(self) -> str:
        """One line: the first problem and how many more."""
        if not self.errors:
            return "ok"
        more = f" (and {len(self.errors) - 1} more problems)" if len(self.errors) > 1 else ""
        return self.errors[0] + more

    def report(self) -> dict[str, Any]:
        """The ``vca_report`` of the action: what ``vca collect`` sums up."""
        return {"node": self.node.dir_name, "node_index": self.node.index, "hostname": self.hostname,
                "files": self.files, "new": self.new, "replaced": self.replaced, "same": self.same,
                "kept": self.kept, "bytes": self.bytes, "archive_bytes": self.archive_bytes,
                "links_skipped": self.links_skipped[:20], "errors": self.errors[:20], "release": self.release}


def file_sha256(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return fd_sha256(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def fd_sha256(fd: int, size: int) -> str:
    """sha256 of the open file's ``size`` bytes and of whatever follows (read at explicit offsets).

    On the lab's kernel (6.18), read() of a file that tar wrote a moment ago sometimes returned 0 bytes
    at offset 0 (a sound file reported as corrupt, about one node in 40); pread at explicit offsets
    never did in 16,000 files. A read that still returns nothing before ``size`` bytes is retried."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    done = empty = 0
    while True:
        n = os.preadv(fd, [buf], done)
        if n:
            h.update(view[:n])
            done += n
            continue
        if done >= size:
            return h.hexdigest()
        empty += 1
        if empty > _EMPTY_READS:
            raise OSError(f"reading stopped after {done} of {size} bytes")
        time.sleep(0.001 * empty)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def compressors(preference: str, same_machine: bool = False) -> list[str]:
    """What the node may use, best first, given what this machine can decompress. ``same_machine``: the
    nodes run on this machine (the local lab), where the link is a memory copy and compressing only
    takes CPU from the nodes (incompressible data collected 1.4x slower with zstd there)."""
    if preference not in COMPRESSIONS:
        raise UsageError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {preference!r}")
    if preference == "auto" and same_machine:
        return ["none"]
    if preference == "auto":
        # zstd -1 stores incompressible data at disk speed where gzip -1 crawls at about 25 MB/s.
        return ["zstd", "gz", "none"] if shutil.which("zstd") else ["gz", "none"]
    return [preference]


class NodeCollector:
    """The controller's part for one node, given the node's probe and the fetched archive."""

    def __init__(self, layout: Layout, spec: RemoteSpec, node: NodeInfo, overwrite: bool) -> None:
        self.layout = layout
        self.spec = spec
        self.node = node
        self.overwrite = overwrite
        self.root = layout.node_root(node.dir_name, node.index)
        self.outcome = NodeOutcome(node)
        self._folders: set[str] = set()
        self._staged = 0
        self._now = utc_now()
        self._base = str(layout.base).rstrip("/")  # every dest starts with it: local paths by slicing
        self._full = False  # this machine's disk filled up during this node's transfer
        self._free = 0  # bytes free when it did

    def held(self, manifest: Manifest) -> dict[tuple[str, str], str]:
        """Files of this node the manifest records and that are still here unchanged, where this REMOTE
        would put them: (sha256, remote path) -> local path. The node need not send them again."""
        out: dict[tuple[str, str], str] = {}
        for e in manifest.entries_of(self.node.dir_name):
            path = self.layout.base / e["local_path"]
            if "\n" in e["remote_path"] or not self._same_place(e["remote_path"], path):
                continue  # the node's skip filter works on lines: such a name is always sent
            with contextlib.suppress(OSError):
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_size == e["size"] and file_sha256(path) == e["sha256"]:
                    out[(e["sha256"], e["remote_path"])] = e["local_path"]
        return out

    def _same_place(self, remote: str, local: Path) -> bool:
        """Whether this REMOTE maps ``remote`` to ``local`` (the node's base folder is not known yet:
        the remote path must end in the local path below the prefix)."""
        try:
            rel = local.relative_to(self.root).as_posix() if local != self.root else ""
        except ValueError:
            return False
        tail = "/" + "/".join(p for p in (self.spec.prefix, rel) if p not in ("", "."))
        if self.spec.base == "root":
            return remote == (tail if tail != "/" else "/")
        return remote.endswith(tail) if tail != "/" else True

    def finish(self, probe: Probe, archive: Extract | None, held: Mapping[tuple[str, str], str]) -> NodeOutcome:
        """Check, verify and place everything the node sent; record what is held already."""
        o = self.outcome
        o.hostname = probe.host
        o.links_skipped = list(probe.links)
        if probe.error:
            o.errors.append(probe.error)
            return o
        if not probe.complete or not probe.base:
            o.errors.append("the node's listing was cut short")
            return o
        o.release = probe.release or None
        try:
            refuse_link(self.root)
        except UnsafePath as exc:
            o.errors.append(exc.one_line())
            return o
        prefix = join_remote(probe.base, self.spec.prefix)
        targets: dict[str, str] = {}  # remote path -> local path relative to the node folder
        for remote in probe.files:
            try:
                targets[remote] = local_rel(remote, prefix, allow_self=self.layout.suffix and self.spec.contents)
            except UnsafePath as exc:
                o.errors.append(exc.message)
        wanted = {r: sha for r, sha in probe.files.items() if r in targets and (sha, r) not in held}
        for r, sha in probe.files.items():
            if r not in targets or (sha, r) not in held:
                continue
            where = self.root / targets[r] if targets[r] else self.root
            if where.relative_to(self.layout.base).as_posix() == held[(sha, r)]:
                o.kept += 1
            else:  # only when the same file was collected before under another REMOTE form
                o.errors.append(f"{r} was not sent (held as {held[(sha, r)]}): collect it again")
        if wanted and archive is None:
            o.errors.append("the node sent no archive")
            return o
        if archive is not None:
            self._unpack(archive, wanted, targets)
        return o

    def _unpack(self, extract: Extract, wanted: Mapping[str, str], targets: Mapping[str, str]) -> None:
        """Have the archive extracted into an empty staging folder, then take from it exactly the regular
        files the node listed, each verified against the node's sha256. Nothing found there that the node
        did not list, and nothing that is not a plain file, is ever placed."""
        o = self.outcome
        staging = tempfile.mkdtemp(prefix=f".vca-collect-{self.node.dir_name}-", dir=self.layout.base)
        try:
            problem = extract(Path(staging))
            # GNU tar says "Wrote only N of M bytes" when the disk fills in the middle of a file.
            if "No space left on device" in problem or "Wrote only" in problem:
                self._disk_full()
            found, strange = regular_files(staging)
            names = {r[1:]: r for r in wanted}  # member names: listed paths without the leading "/"
            for rel in strange[:5]:
                o.errors.append(f"refused archive member {rel!r}: not a regular file")
            extra = sorted(set(found) - set(names))
            if extra:
                o.errors.append(f"refused {len(extra)} archive member(s) that the node did not list, e.g. {extra[0]!r}")
            missing = []
            for rel, remote in names.items():
                if rel in found:
                    self._take(f"{staging}/{rel}", remote, wanted[remote], targets[remote])
                else:
                    missing.append(remote)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                o.errors.append(f"cannot unpack what the node sent: {exc}")
                return
            self._disk_full()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if self._full:
            # What arrived whole is placed and recorded; the rest comes with --retry-failed.
            o.errors.insert(0, f"the local disk is full at {self.layout.local} ({self._free} bytes free): "
                               "free space and run with --retry-failed")
            return
        if missing:
            o.errors.append(f"{len(missing)} listed file(s) missing from the archive, e.g. {sorted(missing)[0]}")
        if problem:  # e.g. a member named with ".." (tar skips it): no sound node sends one
            o.errors.append(f"bad archive from the node: {problem}")

    def _disk_full(self) -> None:
        if not self._full:
            self._full = True
            self._free = free_bytes(self.layout.base)

    def _take(self, staged: str, remote: str, sha: str, rel: str) -> None:
        """Verify one staged file against the node's sha256 and place it. Hot path (once per file)."""
        o = self.outcome
        # Only ever read a plain file: the walk found one here and tar is gone; O_NOFOLLOW and fstat
        # make sure.
        try:
            fd = os.open(staged, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    o.errors.append(f"refused archive member for {remote}: not a regular file")
                    return
                digest = fd_sha256(fd, st.st_size)
                os.fchmod(fd, (st.st_mode & 0o755) | 0o600)  # the mode travels, never special bits
            finally:
                os.close(fd)
        except OSError as exc:
            o.errors.append(f"cannot read {remote} after the transfer: {exc}")
            return
        if digest != sha:
            if self._full:  # cut short by the full disk: it comes with --retry-failed
                return
            o.errors.append(f"checksum mismatch for {remote} (the file changed while it was collected?)")
            return
        dest = f"{self.root}/{rel}" if rel else str(self.root)
        try:
            if rel:
                self._folder(os.path.dirname(dest))
            how = place(staged, dest, sha, st.st_size, self.overwrite)
        except CollectError as exc:
            o.errors.append(exc.one_line())
            return
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            self._disk_full()
            return
        if how == "same":
            o.same += 1
        else:
            o.bytes += st.st_size
            setattr(o, how, getattr(o, how) + 1)
        o.entries.append(self.entry(remote, dest, st.st_size, sha))

    def _folder(self, folder: str) -> None:
        """Make ``folder`` (below the node's root) once per run, refusing one that a link leads elsewhere."""
        if folder in self._folders:
            return
        make_parents(folder, str(self.root), self._folders)

    def entry(self, remote: str, dest: str, size: int, sha: str) -> dict[str, Any]:
        return {
            "node": self.node.dir_name, "node_index": self.node.index, "hostname": self.outcome.hostname,
            "instance_id": self.node.instance_id, "remote_path": remote,
            "local_path": dest[len(self._base) + 1:], "size": size, "sha256": sha,
            "collected_at": self._now, "release": self.outcome.release,
        }


def regular_files(root: str) -> tuple[set[str], list[str]]:
    """Paths (relative to ``root``) of the regular files below it, and of anything else that is not a
    folder; links are never followed, so every path found is a real place inside ``root``."""
    found: set[str] = set()
    strange: list[str] = []
    todo = [""]
    while todo:
        rel = todo.pop()
        with os.scandir(f"{root}/{rel}" if rel else root) as it:
            for e in it:
                name = f"{rel}/{e.name}" if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    todo.append(name)
                elif e.is_file(follow_symlinks=False):
                    found.add(name)
                else:
                    strange.append(name)
    return found, strange


def place(staged: str, dest: str, sha: str, size: int, overwrite: bool) -> str:
    """Move ``staged`` to ``dest`` under the overwrite rule: ``new``, ``same`` (identical file kept,
    staged copy dropped) or ``replaced`` (only with ``overwrite``); raises ``Conflict`` otherwise.
    ``dest``'s folder must exist (``_make_parents``)."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        os.replace(staged, dest)
        return "new"
    if stat.S_ISREG(st.st_mode) and st.st_size == size and file_sha256(Path(dest)) == sha:
        os.unlink(staged)
        return "same"
    if stat.S_ISDIR(st.st_mode):
        raise Conflict(f"{dest} is a folder here but a file on the node; kept it")
    if not overwrite:
        raise Conflict(f"{dest} exists with other content; kept it (--overwrite replaces it)")
    os.replace(staged, dest)
    return "replaced"


def make_parents(folder: str, root: str, known: set[str] | None = None) -> None:
    """Create ``folder`` (``root`` or below it) and the folders between, never through a link: ``root``
    and every folder below it on the way must be a real folder (a link there is refused, not followed).
    ``known``: folders already checked in this run (updated)."""
    known = set() if known is None else known
    rel = os.path.relpath(folder, root)
    if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise UnsafePath(f"refused to write into {folder}: it is not below {root}")
    path = root
    for name in [""] + ([] if rel == "." else rel.split("/")):
        path = f"{path}/{name}" if name else root
        if path in known:
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            try:
                os.mkdir(path)
            except FileExistsError:  # made by someone else meanwhile: look again
                st = os.lstat(path)
            else:
                known.add(path)
                continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"{path} is a link (to {os.readlink(path)}): vca never writes through links",
                             "remove it or collect into another LOCAL")
        if not stat.S_ISDIR(st.st_mode):
            raise Conflict(f"cannot make folder {folder}: {path} is a file")
        known.add(path)


# -- the manifest -------------------------------------------------------------------------------------------


@dataclass
class Manifest:
    """The record beside the results: one entry per local file (keyed by its path relative to the
    manifest's folder), and the nodes whose last collection failed."""

    path: Path
    layout: str = "folders"
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise CollectError(f"cannot read the manifest {path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise CollectError(f"{path} is not a vca collect manifest", "move it away or pick another LOCAL")
        files = {e["local_path"]: e for e in doc.get("files", []) if isinstance(e, dict) and "local_path" in e}
        return cls(path, doc.get("layout", "folders"), files, dict(doc.get("failed_nodes") or {}),
                   list(doc.get("sources") or []))

    def entries_of(self, node: str) -> list[dict[str, Any]]:
        return [e for e in self.files.values() if e.get("node") == node]

    def to_json(self) -> str:
        head = {
            "format": MANIFEST_FORMAT,
            "layout": self.layout,
            "updated_at": utc_now(),
            "sources": self.sources,
            "failed_nodes": dict(sorted(self.failed_nodes.items())),
        }
        # One file per line: readable, greppable, and encoded by json's fast path (no indent).
        lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
        files = ",\n  ".join(json.dumps(self.files[k]) for k in sorted(self.files))
        return "{\n" + "\n".join(lines) + f'\n "files": [\n  {files}\n ]\n}}\n' if files else \
            "{\n" + "\n".join(lines) + '\n "files": []\n}\n'

    def merge(self, layout_name: str, source: str, entries: Iterable[dict[str, Any]],
              failed: Mapping[str, dict[str, Any]], succeeded: Iterable[str]) -> None:
        self.layout = layout_name
        if source and source not in self.sources:
            self.sources.append(source)
        for e in entries:
            self.files[e["local_path"]] = e
        for name in succeeded:
            self.failed_nodes.pop(name, None)
        for name, why in failed.items():
            self.failed_nodes[name] = {**why, "at": utc_now()}

    def save(self) -> None:
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w") as f:
                f.write(self.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except OSError as exc:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise unwritable(self.path.parent, exc) from None


@contextlib.contextmanager
def manifest_locked(path: Path) -> Iterator[Manifest]:
    """Load, change and save the manifest while holding a lock on its folder: nodes are collected by
    parallel processes that each record their own files."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        manifest = Manifest.load(path)
        yield manifest
        manifest.save()
    finally:
        os.close(fd)


def record(layout: Layout, source: str, entries: Iterable[dict[str, Any]],
           failed: Mapping[str, dict[str, Any]] | None = None, succeeded: Iterable[str] = ()) -> None:
    """Merge one run's results into the manifest: entries (replacing those of the same local path),
    nodes that failed (with why), and nodes that succeeded (no longer failed)."""
    layout.prepare()
    with manifest_locked(layout.manifest_path) as m:
        m.merge("suffix" if layout.suffix else "folders", source, entries, failed or {}, succeeded)


def record_outcomes(layout: Layout, spec: RemoteSpec, outcomes: Sequence[NodeOutcome]) -> None:
    """Merge the files and failures of several nodes into the manifest in one write."""
    entries = [e for o in outcomes for e in o.entries]
    failed = {o.node.dir_name: failure(o.node, spec.given, o.message()) for o in outcomes if not o.ok}
    record(layout, spec.given, entries, failed, [o.node.dir_name for o in outcomes if o.ok])


def record_outcome(layout: Layout, spec: RemoteSpec, outcome: NodeOutcome) -> None:
    record_outcomes(layout, spec, [outcome])


def failure(node: NodeInfo, remote: str, message: str) -> dict[str, Any]:
    return {"node_index": node.index, "remote": remote, "error": message}
