#!/usr/bin/env bash
# btmctl enable/disable --system on a scratch file given with --preload-file
# (no root needed): other entries and comments are kept, running twice
# changes nothing, the file is replaced atomically (a reader never sees a
# partial file), and a library that would break programs is refused with
# the file untouched.  Usage errors exit 2.
#   preload_file_test.sh BTMCTL LIBRARY BAD_PRELOAD_LIBRARY
set -u
btmctl=$1
lib=$(readlink -f "$2")
bad=$(readlink -f "$3")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/btm-preload-test.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh"
inode() { stat -c %i "$1"; }

f=$tmp/etc/ld.so.preload
mkdir -p "$tmp/etc"
sys=(--system --library "$lib" --preload-file "$f")

# Usage.
run 2 "$btmctl" enable;                         has "$err" "expected --system or a UNIT"
run 2 "$btmctl" enable --system demo;           has "$err" "not both"
run 2 "$btmctl" enable --bogus;                 has "$err" "unknown option '--bogus'"
run 2 "$btmctl" enable --system --library;      has "$err" "--library needs a PATH"
run 2 "$btmctl" enable demo --preload-file "$f"; has "$err" "--preload-file goes with --system"
run 2 "$btmctl" disable;                        has "$err" "Try 'btmctl --help'."
run 2 "$btmctl" status extra
run 0 "$btmctl" --help;                         has "$out" "btmctl enable --system"

# A missing file is created, mode 0644, holding only our line.
run 0 "$btmctl" enable "${sys[@]}"
has "$out" "trial runs with $lib preloaded passed"
[ "$(cat "$f")" = "$lib" ] || fail "new file holds: $(cat "$f")"
[ "$(stat -c %a "$f")" = 644 ] || fail "new file mode $(stat -c %a "$f")"
run 0 "$btmctl" disable "${sys[@]}"
[ -e "$f" ] && fail "a file left empty must be removed"

# Other entries, comments and the file's mode are kept; the file is
# replaced, not rewritten in place.
printf '# site preloads\n/opt/a/liba.so /opt/b/libb.so # two here\n\n/opt/c/libc.so' >"$f"
chmod 640 "$f"
cp "$f" "$tmp/original"
before=$(inode "$f")
run 0 "$btmctl" enable "${sys[@]}"
has "$out" "enabled: $f now lists $lib"
expected="$(cat "$tmp/original")
$lib"
[ "$(cat "$f")" = "$expected" ] || fail "after enable: $(cat "$f")"
[ "$(inode "$f")" != "$before" ] || fail "enable rewrote the file in place"
[ "$(stat -c %a "$f")" = 640 ] || fail "mode not kept: $(stat -c %a "$f")"
[ "$(ls -A "$tmp/etc")" = "ld.so.preload" ] || fail "temporary files left: $(ls -A "$tmp/etc")"

# Idempotent: the second run changes nothing, not even the inode.
before=$(inode "$f")
run 0 "$btmctl" enable "${sys[@]}"
has "$out" "already enabled"
[ "$(inode "$f")" = "$before" ] || fail "second enable replaced the file"
[ "$(cat "$f")" = "$expected" ] || fail "second enable changed the file"

# status reads the same file.
run 0 "$btmctl" status --library "$lib" --preload-file "$f"
has "$out" "machine-wide: enabled"

# disable removes only our entry, also from a line shared with others.
run 0 "$btmctl" disable "${sys[@]}"
[ "$(cat "$f")" = "$(cat "$tmp/original")" ] || fail "after disable: $(cat "$f")"
run 0 "$btmctl" disable "${sys[@]}"
has "$out" "not enabled"
printf '/opt/a/liba.so %s:/opt/b/libb.so # kept comment\n' "$lib" >"$f"
run 0 "$btmctl" disable "${sys[@]}"
[ "$(cat "$f")" = "/opt/a/liba.so /opt/b/libb.so # kept comment" ] || fail "shared line: $(cat "$f")"

# Another path to the same file counts as ours.
ln -s "$lib" "$tmp/alias.so"
printf '%s\n' "$tmp/alias.so" >"$f"
run 0 "$btmctl" enable "${sys[@]}";  has "$out" "already enabled"
run 0 "$btmctl" disable "${sys[@]}"
[ -e "$f" ] && fail "the alias entry was not removed: $(cat "$f")"

# Refusals leave the file as it was.
printf '/opt/a/liba.so\n' >"$f"
cp "$f" "$tmp/original"
echo 'not a library' >"$tmp/text.so"
run 1 "$btmctl" enable --system --library "$tmp/text.so" --preload-file "$f"
has "$err" "not an ELF shared library"
cp /bin/true "$tmp/program.so"
run 1 "$btmctl" enable --system --library "$tmp/program.so" --preload-file "$f"
has "$err" "refusing to enable"
has "$err" "cannot be preloaded"
run 1 "$btmctl" enable --system --library "$bad" --preload-file "$f"
has "$err" "refusing to enable: '/bin/true' with LD_PRELOAD=$bad wrote to stderr"
has "$err" "bad_preload: loaded into this process"
run 1 "$btmctl" enable --system --library relative/libbtmalloc.so.1 --preload-file "$f"
has "$err" "must be an absolute path"
run 1 "$btmctl" enable --system --library "$tmp/missing.so" --preload-file "$f"
has "$err" "cannot open the library"
cmp -s "$f" "$tmp/original" || fail "a refused enable changed the file: $(cat "$f")"

# Atomic: a reader polling the file while enable and disable alternate
# sees the old or the new contents, never anything else.
state_a=$(cat "$f")
state_b="$state_a
$lib"
(
  while :; do
    got=$(cat "$f" 2>/dev/null)
    if [ "$got" != "$state_a" ] && [ "$got" != "$state_b" ]; then
      printf '%s\n' "$got" >"$tmp/torn"
    fi
  done
) &
reader=$!
for _ in $(seq 15); do
  "$btmctl" enable "${sys[@]}" >/dev/null 2>&1 || fail "enable in the loop"
  "$btmctl" disable "${sys[@]}" >/dev/null 2>&1 || fail "disable in the loop"
done
kill $reader 2>/dev/null
wait $reader 2>/dev/null
[ -e "$tmp/torn" ] && fail "a reader saw a partial file: $(head -c 300 "$tmp/torn")"

[ $status -eq 0 ] && echo "ok: preload file editing"
exit $status
