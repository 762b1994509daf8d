#!/usr/bin/env bash
# btmctl's command line: usage errors exit 2, `config check` prints
# FILE:LINE: REASON and exits 1 on problems, `config show` reports values and
# their sources.
#   btmctl_test.sh BTMCTL REPO_DIR
set -u
btmctl=$1 repo=$2
tmp=$(mktemp -d /tmp/btmctl-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unset BTM_CONF BTM_PARTITIONS BTM_VERBOSE
status=0
fail() { echo "FAIL: $*"; status=1; }

run() {  # run WANTED_EXIT -- command...; leaves stdout in $out, stderr in $err
  local want=$1; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  out=$(cat "$tmp/out") err=$(cat "$tmp/err")
  [ $rc -eq "$want" ] || fail "'$*' exited $rc, wanted $want (stdout: $out; stderr: $err)"
}
has() { grep -qF -- "$2" <<<"$1" || fail "missing '$2' in: $1"; }

# Usage.
run 2 -- "$btmctl";                     has "$err" "Usage:"
run 0 -- "$btmctl" --help;              has "$out" "btmctl config check [FILE...]"
run 0 -- "$btmctl" --version;           has "$out" "btmctl "
run 2 -- "$btmctl" frobnicate;          has "$err" "btmctl: unknown command 'frobnicate'"
run 2 -- "$btmctl" config;              has "$err" "Try 'btmctl --help'."
run 2 -- "$btmctl" config frobnicate
run 2 -- "$btmctl" config check --strict
run 2 -- "$btmctl" config show --program
run 2 -- "$btmctl" config show extra
run 2 -- "$btmctl" config man extra
run 0 -- "$btmctl" config --help;       has "$out" "btmctl config show"

# check.
printf 'partitions = 8\n[program python3*]\nasync = off\n' >"$tmp/good.conf"
run 0 -- "$btmctl" config check "$tmp/good.conf"
[ -z "$out" ] || fail "clean check printed: $out"
printf 'partitions = 8\nbogus = 1\n[program x]\nasync = maybe\n' >"$tmp/bad.conf"
run 1 -- "$btmctl" config check "$tmp/good.conf" "$tmp/bad.conf"
[ "$out" = "$tmp/bad.conf:2: unknown key 'bogus'
$tmp/bad.conf:4: bad value 'maybe' for async: expected on or off" ] || fail "check output: $out"
run 1 -- "$btmctl" config check "$tmp/missing.conf"
has "$out" "$tmp/missing.conf: cannot open: no such file or directory"
run 1 -- "$btmctl" config check "$tmp"
has "$out" "$tmp: a directory, not a regular file; ignored"
for i in $(seq 30); do echo "junk $i"; done >"$tmp/many.conf"
run 1 -- "$btmctl" config check "$tmp/many.conf"
[ "$(wc -l <<<"$out")" -eq 30 ] || fail "check must report every problem, got $(wc -l <<<"$out")"
# A file named on the command line is a draft: any owner and mode will do.
cp "$tmp/good.conf" "$tmp/theirs.conf"; chmod 666 "$tmp/theirs.conf"
[ "$(id -u)" = 0 ] && chown 65534 "$tmp/theirs.conf"
run 0 -- "$btmctl" config check "$tmp/theirs.conf"
# The system files: why the library would ignore one, and its lines'
# problems (a copy of /etc in a private mount namespace).
if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then
  unshare -m --propagation private bash -c '
    cp -a /etc "$1/etc" && mount --bind "$1/etc" /etc || exit 99
    rm -rf /etc/btmalloc.conf /etc/btmalloc.conf.d
    printf "partitions = 8\nbogus = 1\n" >/etc/btmalloc.conf
    chmod 666 /etc/btmalloc.conf
    "$2" config check' _ "$tmp" "$btmctl" >"$tmp/out" 2>&1
  rc=$?
  rm -rf "$tmp/etc"
  [ $rc = 1 ] || fail "config check of an untrusted /etc/btmalloc.conf exited $rc: $(cat "$tmp/out")"
  [ "$(cat "$tmp/out")" = "/etc/btmalloc.conf: writable by group or others (mode 0666); ignored
/etc/btmalloc.conf:2: unknown key 'bogus'" ] || fail "config check of an untrusted /etc/btmalloc.conf: $(cat "$tmp/out")"
fi
run 0 -- "$btmctl" config check "$repo/packaging/btmalloc.conf"
if [ ! -e /etc/btmalloc.conf ] && [ ! -e /etc/btmalloc.conf.d ]; then
  run 0 -- "$btmctl" config check
fi

# show.
printf 'partitions = 8\n[program python3*]\npartitions = 16\nbogus = 1\n' >"$tmp/show.conf"
run 0 -- env BTM_CONF="$tmp/show.conf" "$btmctl" config show
has "$out" "partitions = 8"
has "$out" "# $tmp/show.conf:1"
run 0 -- env BTM_CONF="$tmp/show.conf" "$btmctl" config show --program python3.11
has "$out" "# effective configuration for program python3.11"
has "$out" "# $tmp/show.conf:3"
has "$err" "$tmp/show.conf:4: unknown key 'bogus'"
run 0 -- env BTM_CONF="$tmp/show.conf" BTM_PARTITIONS=32 "$btmctl" config show --program=python3.11
grep -qE '^partitions = 32 +# environment$' <<<"$out" || fail "environment source: $out"
run 0 -- env BTM_PARTITIONS=32 "$btmctl" config show --no-env
grep -qE '^partitions = 32' <<<"$out" && fail "--no-env still read BTM_PARTITIONS"
run 0 -- env BTM_PARTITIONS=32 "$btmctl" config show --secure
grep -qE '^partitions = 32' <<<"$out" && fail "--secure still read BTM_PARTITIONS"
# Its output is itself a valid configuration file.
run 0 -- env BTM_CONF="$tmp/show.conf" "$btmctl" config show
printf '%s\n' "$out" >"$tmp/shown.conf"
run 0 -- "$btmctl" config check "$tmp/shown.conf"

# man and example.
run 0 -- "$btmctl" config man;      has "$out" ".TP"
run 0 -- "$btmctl" config example;  has "$out" "#partitions = 64"
[ $status -eq 0 ] && echo "ok: btmctl"
exit $status
