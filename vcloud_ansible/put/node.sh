# vca put, the node side: receive one tar stream on stdin and place it at DEST, verified.
# Arguments: DEST KIND(file|dir) NAME SHA256 SIZE COMPRESSION(""|gz). Prints key=value lines.
set -u
dest=$1; kind=$2; name=$3; sha=$4; size=$5; comp=$6
fail() { echo "error=$*"; exit 1; }
case "$dest" in
  "~") dest=$HOME ;; "~/"*) dest="$HOME/${dest#\~/}" ;; /*) ;; *) dest="$HOME/$dest" ;;
esac
into=0; case "$dest" in */) into=1 ;; esac
if [ "$into" = 1 ]; then mkdir -p "$dest" 2>/dev/null || fail "cannot make the folder $dest"; fi
# into a folder named with a trailing / (a file also into a folder that exists); else DEST is the copy
if [ "$into" = 1 ] || { [ "$kind" = file ] && [ -d "$dest" ]; }; then dest="${dest%/}/$name"; fi
real=$(realpath -m "$dest"); vca=$(realpath -m "$HOME/vca")
case "$real/" in
  "$vca"/*) fail "$real is inside $vca, where vca keeps the releases and their jobs: put it elsewhere" ;;
esac
[ "$kind" = file ] && [ -d "$real" ] && fail "$real is a folder"
[ "$kind" = dir ] && [ -e "$real" ] && [ ! -d "$real" ] && fail "$real exists and is not a folder"
parent=$(dirname "$real")
mkdir -p "$parent" 2>/dev/null || fail "cannot make the folder $parent"
tmp=$(mktemp -d "$parent/.vca-put.XXXXXX" 2>/dev/null) || fail "cannot write in $parent"
trap 'rm -rf "$tmp"' EXIT
free() { df -Pk "$parent" 2>/dev/null | awk 'NR == 2 { print $4 }'; }
cat > "$tmp/stream" 2>/dev/null || fail "the node's disk is full: $parent has $(free) KiB free"
got=$(wc -c < "$tmp/stream")
[ "$got" = "$size" ] || fail "received $got of $size bytes (the connection broke?)"
[ "$(sha256sum "$tmp/stream" | cut -d ' ' -f 1)" = "$sha" ] || fail "the bytes received differ from those sent (sha256)"
flag=; [ "$comp" = gz ] && flag=z
mkdir "$tmp/x"
if ! tar -x${flag}f "$tmp/stream" -C "$tmp/x" --no-same-owner 2>"$tmp/err"; then
  grep -q "No space left" "$tmp/err" && fail "the node's disk is full: unpacking needs more than the $(free) KiB free in $parent"
  fail "unpacking failed: $(head -c 300 "$tmp/err")"
fi
rm -f "$tmp/stream"
if [ "$kind" = file ] || [ ! -d "$real" ]; then
  mv -f "$tmp/x/p" "$real" || fail "cannot write $real"   # a new folder or a file: replaced at once
else
  cp -a "$tmp/x/p/." "$real/" || fail "cannot write into $real"   # an existing folder: merged, like cp -r
fi
echo "path=$real"
echo "ok=1"
