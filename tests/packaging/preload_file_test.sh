#!/usr/bin/env bash
# btmctl enable/disable --system on a scratch file given with --preload-file
# (no root needed): other entries and a comment are kept, comments that
# glibc's loader misreads are pointed out (and dropped on request), running
# twice changes nothing, the file is replaced atomically (a reader never sees
# a partial file) and written through a symbolic link, and a library that
# would break programs -- any program, or only the package manager, a
# set-user-ID program or a threaded one -- is refused with the file
# untouched and the real reason.  Usage errors exit 2.  As root, in a private
# mount namespace with a copy of /etc, the same against the real path.
#   preload_file_test.sh BTMCTL LIBRARY BAD_PRELOAD_LIBRARY PICKY_DIR
set -u
btmctl=$1
lib=$(readlink -f "$2")
bad=$(readlink -f "$3")
picky=$(readlink -f "$4")
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

# Other entries, a comment and the file's mode are kept; the file is
# replaced, not rewritten in place.
printf '# site preloads\n/opt/a/liba.so /opt/b/libb.so\n\n/opt/c/libc.so' >"$f"
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
# ...but a line left with only its comment goes: a comment line there is
# what glibc misreads (below).
printf '# one\n%s # mine\n/opt/a/liba.so\n' "$lib" >"$f"
run 0 "$btmctl" disable "${sys[@]}"
[ "$(cat "$f")" = "$(printf '# one\n/opt/a/liba.so')" ] || fail "comment left behind: $(cat "$f")"

# glibc 2.36's loader blanks only the first '#' comment: with a second one
# every process reports "object 'two' cannot be preloaded".  enable points
# such comments out and refuses; --drop-comments drops them (the first
# stays) and never writes a comment itself.
printf '# one\n/opt/a/liba.so # two\n# three\n' >"$f"
cp "$f" "$tmp/original"
run 1 "$btmctl" enable "${sys[@]}"
has "$err" "$f:2: # two"
has "$err" "$f:3: # three"
has "$err" "--drop-comments"
cmp -s "$f" "$tmp/original" || fail "enable changed a file with misread comments: $(cat "$f")"
run 0 "$btmctl" enable "${sys[@]}" --drop-comments
[ "$(cat "$f")" = "$(printf '# one\n/opt/a/liba.so\n%s' "$lib")" ] || fail "after --drop-comments: $(cat "$f")"
run 0 "$btmctl" disable "${sys[@]}"

# A symbolic link is written through, never replaced, also when its target
# does not exist yet, and kept (its target emptied) when nothing is left.
mkdir -p "$tmp/srv"
ln -s ../srv/preload "$tmp/etc/link.preload"
lsys=(--system --library "$lib" --preload-file "$tmp/etc/link.preload")
run 0 "$btmctl" enable "${lsys[@]}"
[ -L "$tmp/etc/link.preload" ] || fail "enable replaced the symbolic link"
[ "$(cat "$tmp/srv/preload")" = "$lib" ] || fail "the link's target holds: $(cat "$tmp/srv/preload" 2>&1)"
printf '/opt/a/liba.so\n%s\n' "$lib" >"$tmp/srv/preload"
run 0 "$btmctl" disable "${lsys[@]}"
[ -L "$tmp/etc/link.preload" ] || fail "disable replaced the symbolic link"
[ "$(cat "$tmp/srv/preload")" = /opt/a/liba.so ] || fail "target after disable: $(cat "$tmp/srv/preload")"
printf '%s\n' "$lib" >"$tmp/srv/preload"
run 0 "$btmctl" disable "${lsys[@]}"
[ -L "$tmp/etc/link.preload" ] && [ -f "$tmp/srv/preload" ] && [ ! -s "$tmp/srv/preload" ] ||
  fail "a symlinked file left empty must stay, empty: $(ls -l "$tmp/etc" "$tmp/srv")"
# Under --root an absolute target is inside the tree.
mkdir -p "$tmp/root/etc" "$tmp/root/srv" "$tmp/root/opt"
cp "$lib" "$tmp/root/opt/libbtmalloc.so.1"
ln -s /srv/preload "$tmp/root/etc/ld.so.preload"
run 0 "$btmctl" enable --system --library /opt/libbtmalloc.so.1 --root "$tmp/root"
[ -L "$tmp/root/etc/ld.so.preload" ] && [ "$(cat "$tmp/root/srv/preload")" = /opt/libbtmalloc.so.1 ] ||
  fail "--root: absolute link not followed inside the tree: $(ls -lR "$tmp/root")"

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
# Libraries that break only some programs: the trial runs include the
# package manager, a set-user-ID program (root only) and a threaded one.
expect_refused() {  # expect_refused LIBRARY PROGRAM
  run 1 "$btmctl" enable --system --library "$1" --preload-file "$f"
  has "$err" "refusing to enable: '$2"
  has "$err" "was killed by signal 6"
}
if [ -x /usr/bin/apt-get ] || [ -x /usr/bin/rpm ]; then
  run 1 "$btmctl" enable --system --library "$picky/libpackaging_picky_package_manager.so" --preload-file "$f"
  grep -qE "refusing to enable: '(/usr/bin/apt-get|/usr/bin/dpkg-query|/usr/bin/rpm) .*killed by signal 6" <<<"$err" ||
    fail "a library that breaks only the package manager: $err"
fi
[ -x /usr/bin/python3 ] && expect_refused "$picky/libpackaging_picky_threads.so" /usr/bin/python3
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
  run 1 "$btmctl" enable --system --library "$picky/libpackaging_picky_secure.so" --preload-file "$f"
  grep -qE "refusing to enable: 'set-user-ID .* was killed by signal 6" <<<"$err" ||
    fail "a library that breaks only set-user-ID programs: $err"
fi
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

# The real /etc/ld.so.preload (a copy of /etc in a private mount
# namespace): a failure that is there without btmalloc too is reported as
# such, not blamed on the library.
if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then
  unshare -m --propagation private bash -s "$btmctl" "$lib" "$tmp" >"$tmp/ns.out" 2>&1 <<'NS' || status=1
    btmctl=$1 lib=$2 tmp=$3
    status=0
    fail() { echo "FAIL: $*"; status=1; }
    cp -a /etc "$tmp/etc-copy" && mount --bind "$tmp/etc-copy" /etc || { echo "FAIL: cannot bind-mount /etc"; exit 1; }
    p=/etc/ld.so.preload sys=(--system --library "$lib" --preload-file /etc/ld.so.preload)
    printf '# one\n# two\n' >$p
    "$btmctl" enable "${sys[@]}" >"$tmp/o" 2>"$tmp/e"; rc=$?
    [ $rc = 1 ] || fail "misread comments: enable exited $rc"
    grep -qF "$p:2: # two" "$tmp/e" || fail "misread comments not pointed out: $(cat "$tmp/e")"
    grep -qF "'/bin/true'" "$tmp/e" && fail "/bin/true blamed for the comments: $(cat "$tmp/e")"
    "$btmctl" enable "${sys[@]}" --drop-comments >"$tmp/o" 2>"$tmp/e" || fail "--drop-comments: $(cat "$tmp/e")"
    [ "$(cat $p)" = "$(printf '# one\n%s' "$lib")" ] || fail "after --drop-comments: $(cat $p)"
    [ -z "$(/bin/true 2>&1)" ] || fail "the loader still complains: $(/bin/true 2>&1)"
    printf '/opt/missing/libgone.so\n' >$p
    "$btmctl" enable "${sys[@]}" >"$tmp/o" 2>"$tmp/e" || fail "a failure without btmalloc blocked enable: $(cat "$tmp/e")"
    grep -qF "without $lib as well" "$tmp/e" || fail "the failure without btmalloc not mentioned: $(cat "$tmp/e")"
    umount /etc
    exit $status
NS
  cat "$tmp/ns.out"
  grep -q FAIL "$tmp/ns.out" && status=1
  rm -rf "$tmp/etc-copy"
else
  echo "note: the real /etc/ld.so.preload cases need root and unshare -m; not run"
fi

[ $status -eq 0 ] && echo "ok: preload file editing"
exit $status
