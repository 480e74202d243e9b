set -u
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
