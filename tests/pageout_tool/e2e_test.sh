#!/bin/bash
# End to end: btm-pageout signals a btmalloc process that catches the
# pageout signal (its pageout_requests go up, its data stays intact, it stays
# alive), and skips, with a reason, a process without btmalloc and a
# btmalloc process started without the knob (its SigCgt lacks the bit: the
# signal would kill it).  Usage: e2e_test.sh BTM_PAGEOUT LIBBTMALLOC CHILD
set -u
tool=$1 lib=$2 child=$3
tmp=$(mktemp -d)
pids=()
swapfile=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "$swapfile" ] && swapoff "$swapfile" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
export -n BTM_CONF BTM_PAGEOUT_SIGNAL BTM_ENABLED
export BTM_CONF=  # no system configuration for the children

# Starts CHILD with btmalloc; $1 = result file, rest = environment.
start_child() {
    local out=$1; shift
    env "$@" LD_PRELOAD="$lib" "$child" "$out" > "$out.ready" &
    pids+=($!)
    for _ in $(seq 100); do grep -q ready "$out.ready" 2>/dev/null && break; sleep 0.05; done
    grep -q ready "$out.ready" || fail "child did not start"
}

start_child "$tmp/with" BTM_PAGEOUT_SIGNAL=RTMIN+3
with=${pids[-1]}
start_child "$tmp/without"
without=${pids[-1]}
start_child "$tmp/own" BTM_PAGEOUT_SIGNAL=RTMIN+3 BTM_TEST_OWN_HANDLER=1
own=${pids[-1]}
sleep 30 & pids+=($!); plain=$!
sleep 2

# The knob's process catches RTMIN+3 (bit 38 of SigCgt); the other does not.
rt3=$(( $(getconf SIGRTMIN 2>/dev/null || echo 34) + 3 ))
cgt=$(awk '/^SigCgt/ {print $2}' /proc/$with/status)
(( (16#$cgt >> (rt3 - 1)) & 1 )) || fail "the child with the knob does not catch RTMIN+3 (SigCgt $cgt)"

"$tool" --pid "$with" --pid "$without" --pid "$plain" --min-age 1 --signal RTMIN+3 --wait 1 > "$tmp/report" 2>&1
rc=$?
cat "$tmp/report"
# One of three skipped: a partial result is still exit 0 (skips are not failures).
[ "$rc" = 0 ] || fail "exit status $rc, expected 0"
grep -q "^paged   $with " "$tmp/report" || fail "the btmalloc child was not paged"
grep -q "^skipped $without .*does not catch RTMIN+3" "$tmp/report" || fail "no reason for the child without the knob"
grep -q "^skipped $plain .*does not run with btmalloc" "$tmp/report" || fail "no reason for sleep"

# JSON, dry run: the same selection, nothing sent.
"$tool" --pid "$with" --pid "$plain" --signal RTMIN+3 --dry-run --json > "$tmp/json" || fail "dry run failed"
python3 - "$tmp/json" "$with" "$plain" <<'PY' || fail "JSON report"
import json, sys
r = json.load(open(sys.argv[1]))
st = {p["pid"]: p["status"] for p in r["processes"]}
assert r["dry_run"] is True and r["signal"] == "RTMIN+3", r
assert st[int(sys.argv[2])] == "selected" and st[int(sys.argv[3])] == "skipped", st
assert r["total"]["targets"] == 1, r
PY

# Only skipped processes: nothing to do, exit 1.
"$tool" --pid "$plain" --signal RTMIN+3 > /dev/null; rc=$?
[ "$rc" = 1 ] || fail "nothing to do gave $rc, expected 1"

# A program that took the signal for itself: whoever sends it, its own
# handler runs, it stays alive, and btmalloc does not page out behind its back.
"$tool" --pid "$own" --min-age 1 --signal RTMIN+3 --wait 1 > "$tmp/own-report" 2>&1
for p in "$with" "$without" "$plain" "$own"; do
    kill -0 "$p" 2>/dev/null || fail "process $p died"
done
kill -TERM "$own"
wait "$own" || fail "the child with its own handler exited badly"
read -r b a i o < <(sed 's/[a-z]*=//g' "$tmp/own")
(( a == b )) || fail "btmalloc paged out in a program that took the signal for itself ($b -> $a)"
(( o >= 1 )) || fail "the program's own handler did not run"
[ "$i" = 1 ] || fail "the data of the child with its own handler is corrupted"
kill -TERM "$with" "$without"
wait "$with" || fail "the child with the knob exited badly"
wait "$without" || fail "the child without the knob exited badly"
cat "$tmp/with" "$tmp/without"
read -r b a i _ < <(sed 's/[a-z]*=//g' "$tmp/with")
(( a > b )) || fail "pageout_requests did not go up ($b -> $a)"
[ "$i" = 1 ] || fail "the paged-out data is corrupted"
read -r b a i _ < <(sed 's/[a-z]*=//g' "$tmp/without")
(( a == b )) || fail "the child without the knob paged out ($b -> $a)"
[ "$i" = 1 ] || fail "the data of the child without the knob is corrupted"

# With swap, the cold set must really leave RAM: as root, swap on a temporary
# file for this phase only (the cleanup always swaps it off again).
vmrss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED: RSS drop with swap: needs root to swapon a temporary swap file"
elif ! { fallocate -l 256M "$tmp/swap" 2>/dev/null && chmod 600 "$tmp/swap" &&
         mkswap "$tmp/swap" >/dev/null 2>&1 && swapon "$tmp/swap" 2>/dev/null; }; then
    echo "SKIPPED: RSS drop with swap: swapon of a temporary file failed here"
else
    swapfile=$tmp/swap
    start_child "$tmp/swapped" BTM_PAGEOUT_SIGNAL=RTMIN+3
    c=${pids[-1]}
    sleep 2
    rss0=$(vmrss "$c")
    "$tool" --pid "$c" --min-age 1 --signal RTMIN+3 --wait 1 > "$tmp/swap-report" 2>&1 ||
        { cat "$tmp/swap-report"; fail "btm-pageout failed with swap on"; }
    rss1=$(vmrss "$c")
    echo "with swap: RSS ${rss0} kB -> ${rss1} kB"
    # The child's cold set is ~60 MB (61440 objects of 1000 B): at least 80% of it must be gone.
    (( rss0 - rss1 >= 48000 )) || fail "RSS dropped by only $(( rss0 - rss1 )) kB with swap on"
    kill -TERM "$c"
    wait "$c" || fail "the swapped child exited badly"
    read -r b a i _ < <(sed 's/[a-z]*=//g' "$tmp/swapped")
    [ "$i" = 1 ] || fail "the swapped-out data came back corrupted"
    swapoff "$swapfile" && swapfile=
fi
echo PASS
