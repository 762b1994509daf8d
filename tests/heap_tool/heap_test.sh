#!/usr/bin/env bash
# btmctl heap against the test service (heap_victim.c) under LD_PRELOAD:
# the call sites are named with and without separate debug info, the JSON
# validates, the folded output parses, --diff ranks the leaks first (the
# small one at its rate), a process in its start-up phase and one with only
# large blocks are profiled, inside (malloc_stats) and from outside, a saved
# malloc_stats() report is named (--symbolize), btmctl status shows live and
# committed bytes, another user's process without privilege and a process
# exiting during the read are reported, not fatal.
# Usage: heap_test.sh BTMCTL LIBBTMALLOC VICTIM_SYMTAB VICTIM_SPLIT
#   VICTIM_SYMTAB  built without debug info (names from .symtab only)
#   VICTIM_SPLIT   stripped, its debug info in a separate file (debuglink)
set -u
btmctl=$1 lib=$2 symtab=$3 split=$4
source "$(dirname "$0")/../pageout_tool/lib.sh"
export BTM_PARTITION_AFTER=0 BTM_PARTITION_MODE=intern

# What the heap says of a running victim; fails the test on a bad exit.
heap() {
    "$btmctl" heap "$@" > "$tmp/heap.out" 2> "$tmp/heap.err"
    local rc=$?
    [ $rc = 0 ] || { cat "$tmp/heap.out" "$tmp/heap.err"; fail "btmctl heap $* exited with $rc"; }
}

# 1. Usage errors: exit 2 with a message.
for bad in "" "--top" "--top 0 1" "--bogus 1" "1 2" "1 --diff" "1 --diff 5x" "1 --watch --json" \
           "--symbolize" "1 --symbolize f"; do
    # shellcheck disable=SC2086
    "$btmctl" heap $bad > /dev/null 2> "$tmp/usage.err"
    rc=$?
    [ $rc = 2 ] && grep -q "btmctl: heap" "$tmp/usage.err" || fail "'btmctl heap $bad' gave $rc: $(cat "$tmp/usage.err")"
done

# 2. Names: every victim's call sites by function, file:line only where
# debug info exists.
for build in symtab split; do
    victim=${!build}
    start_bg "$build" env LD_PRELOAD="$lib" "$victim" "$tmp/$build.ready" all
    p=pid_$build
    sleep 1
    heap "${!p}"
    for fn in leak_steady keep_stable leak_large; do
        grep -q "^ *[0-9]\+ \+[0-9]\+ \+[0-9.]\+%  $fn+0x[0-9a-f]\+ ($(basename "$victim"))" "$tmp/heap.out" ||
            { cat "$tmp/heap.out"; fail "$build: no line naming $fn"; }
    done
    if [ "$build" = split ]; then
        grep -q "leak_steady+0x[0-9a-f]* ([^)]*) .*heap_victim.c:[0-9]\+" "$tmp/heap.out" ||
            { cat "$tmp/heap.out"; fail "split: no file:line from the separate debug info"; }
    else
        ! grep -q "heap_victim.c:" "$tmp/heap.out" || { cat "$tmp/heap.out"; fail "symtab: a file:line without debug info"; }
    fi
    grep -q "the process was not stopped" "$tmp/heap.out" || fail "the table does not say the process ran on"
done

# 3. JSON: valid, and the same sites as the table.
heap "$pid_split" --json
/usr/bin/python3 -m json.tool "$tmp/heap.out" > /dev/null || { cat "$tmp/heap.out"; fail "invalid JSON"; }
/usr/bin/python3 - "$tmp/heap.out" "$pid_split" <<'PY' || fail "JSON contents"
import json, sys
doc = json.load(open(sys.argv[1]))
assert len(doc) == 1 and doc[0]["pid"] == int(sys.argv[2]), doc
sites = doc[0]["sites"]
names = {s["function"] for s in sites}
assert {"leak_steady", "keep_stable"} <= names, names
assert [s["bytes"] for s in sites] == sorted((s["bytes"] for s in sites), reverse=True), "not sorted"
assert abs(sum(s["share"] for s in sites) - 1) < 1e-6, "shares"
assert doc[0]["live_bytes"] == sum(s["bytes"] for s in sites)
stable = [s for s in sites if s["function"] == "keep_stable"][0]
assert stable["blocks"] >= 2000 and stable["bytes"] >= 2000 * 300, stable
assert stable["kind"] == "slabs", stable
large = [s for s in sites if s["function"] == "leak_large"][0]
assert large["kind"] == "large" and large["bytes"] == large["blocks"] * 3 * 2**20, large
PY

# 4. Folded: `module;function bytes` on every line, the functions there.
heap "$pid_split" --folded
grep -qv '^[^; ]\+;[^;]\+ [0-9]\+$' "$tmp/heap.out" && { cat "$tmp/heap.out"; fail "a folded line does not parse"; }
grep -q "^heap_victim_split;leak_steady [0-9]\+$" "$tmp/heap.out" || { cat "$tmp/heap.out"; fail "folded: leak_steady"; }

# 5. --diff: the leaks first: the large one (a 3 MiB block a second, 3 or
# 4 of them in the window), then the steady one at its true rate (400000
# B/s, in blocks of 1000 B that take 1024-byte slots) within 20%; the
# stable site does not grow.
heap "$pid_split" --diff 3s
awk 'NR == 3 && $4 !~ /^leak_large\+/ { exit 1 }
     NR == 4 { if ($4 !~ /^leak_steady\+/) exit 1; r = $1 / 409600; exit !(r > 0.8 && r < 1.2) }' "$tmp/heap.out" ||
    { cat "$tmp/heap.out"; fail "--diff: not leak_large, then leak_steady at 400 KB/s +-20%"; }
! grep -q keep_stable "$tmp/heap.out" || { cat "$tmp/heap.out"; fail "--diff lists the stable site"; }
heap "$pid_split" --diff 1s --json
/usr/bin/python3 -m json.tool "$tmp/heap.out" > /dev/null || { cat "$tmp/heap.out"; fail "--diff: invalid JSON"; }
"$btmctl" heap "$pid_split" --diff 1s --folded > /dev/null 2>&1
[ $? = 2 ] || fail "--diff --folded is not a usage error"

# 6. btmctl status: the allocator's live and committed bytes beside RSS.
"$btmctl" status > "$tmp/status.out" 2>&1
grep -A3 "^ *$pid_split " "$tmp/status.out" | grep -q "heap: live [0-9.]\+ MiB, committed [0-9.]\+ MiB ([0-9]\+% of it live)" ||
    { cat "$tmp/status.out"; fail "status: no live/committed line for $pid_split"; }

# 7. Another user's process without privilege: a clear error, exit 1.
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
    setpriv --reuid=65534 --regid=65534 --clear-groups "$btmctl" heap "$pid_split" > "$tmp/priv.out" 2>&1
    rc=$?
    [ $rc = 1 ] && grep -q "process $pid_split: .*\(another user\|needs root\|ptrace\)" "$tmp/priv.out" ||
        fail "unprivileged read gave $rc: $(cat "$tmp/priv.out")"
else
    echo "note: not root, the unprivileged case is not run"
    unprivileged_skipped=1
fi

# 8. --symbolize: a saved malloc_stats() report (module+0xoff, build-id,
# path) gets the same names, file:line through the separate debug info.
env LD_PRELOAD="$lib" "$split" "$tmp/none" report 2> "$tmp/report.txt" || fail "the report run failed"
grep -q "^[0-9]\+ [0-9]\+ heap_victim_split+0x[0-9a-f]\+ [0-9a-f]\{40\} $split$" "$tmp/report.txt" ||
    { cat "$tmp/report.txt"; fail "the report has no site line with a build-id and path"; }
heap --symbolize "$tmp/report.txt"
for fn in leak_steady keep_stable; do
    grep -q "^ *[0-9]\+  $fn+0x[0-9a-f]\+ (heap_victim_split) .*heap_victim.c:[0-9]\+$" "$tmp/heap.out" ||
        { cat "$tmp/heap.out"; fail "--symbolize: no line naming $fn"; }
done
# A leak of 10 x 3 MiB in large blocks, and a process still in its
# start-up phase: their report lists the blocks under their call site.
env LD_PRELOAD="$lib" "$split" "$tmp/none" large-report 2> "$tmp/report.txt" || fail "the large report run failed"
heap --symbolize "$tmp/report.txt"
grep -q "^ *31457280  leak_large+0x[0-9a-f]\+ (heap_victim_split) .*heap_victim.c:[0-9]\+$" "$tmp/heap.out" ||
    { cat "$tmp/report.txt" "$tmp/heap.out"; fail "--symbolize: the report does not list the 10 large blocks under leak_large"; }
env -u BTM_PARTITION_AFTER -u BTM_PARTITION_MODE LD_PRELOAD="$lib" "$split" "$tmp/none" startup-report 2> "$tmp/report.txt" ||
    fail "the start-up report run failed"
heap --symbolize "$tmp/report.txt"
awk '/leak_steady\+0x[0-9a-f]+ \(heap_victim_split\) .*heap_victim.c:[0-9]+$/ { found = $1 >= 8000 } END { exit !found }' \
    "$tmp/heap.out" || { cat "$tmp/report.txt" "$tmp/heap.out"; fail "--symbolize: a start-up report does not list leak_steady's 8 blocks"; }
printf 'no sites here\n' > "$tmp/empty.txt"
"$btmctl" heap --symbolize "$tmp/empty.txt" > /dev/null 2>&1
[ $? = 1 ] || fail "--symbolize of a file without sites is not an error"

# 9. A process in its start-up phase (default knobs: blocks packed in the
# start-up arena, no heap yet): its blocks are named by their call site.
start_bg boot env -u BTM_PARTITION_AFTER -u BTM_PARTITION_MODE LD_PRELOAD="$lib" "$split" "$tmp/boot.ready" startup
heap "$pid_boot"
grep -q "^ *[0-9]\+ \+8 \+[0-9.]\+%  leak_steady+0x[0-9a-f]\+ (heap_victim_split) .*\[start-up arena\]$" "$tmp/heap.out" ||
    { cat "$tmp/heap.out"; fail "start-up phase: leak_steady's 8 blocks are not listed"; }
awk '/leak_steady/ { exit !($1 >= 8000) }' "$tmp/heap.out" || { cat "$tmp/heap.out"; fail "start-up phase: bytes"; }

# 10. A process with only large blocks (a 3 MiB block a second; default
# knobs: still in its start-up phase, no heap): listed under their call
# site, each block its own mapping of exactly 3 MiB, and counted live by
# btmctl status.
start_bg large env -u BTM_PARTITION_AFTER -u BTM_PARTITION_MODE LD_PRELOAD="$lib" "$split" "$tmp/large.ready" large
sleep 1.5
heap "$pid_large"
awk '/leak_large\+0x[0-9a-f]+ \(heap_victim_split\) .*\[large blocks\]$/ { found = $2 >= 2 && $1 == $2 * 3145728 }
     END { exit !found }' "$tmp/heap.out" || { cat "$tmp/heap.out"; fail "only large blocks: leak_large's blocks are not listed"; }
"$btmctl" status > "$tmp/status.out" 2>&1
grep -A3 "^ *$pid_large " "$tmp/status.out" | grep -q "heap: live \([6-9]\|[1-9][0-9]\+\)\.[0-9] MiB in its start-up phase" ||
    { cat "$tmp/status.out"; fail "status: the start-up process's large blocks are not live"; }

# 11. A process that exits during the read: reported, never a crash.
kill "$pid_symtab"
for _ in $(seq 30); do
    "$btmctl" heap "$pid_symtab" > /dev/null 2> "$tmp/gone.err"
    rc=$?
    [ $rc -le 1 ] || fail "btmctl heap on an exiting process gave $rc: $(cat "$tmp/gone.err")"
done
grep -q "process $pid_symtab: \(exited\|the process exited\)" "$tmp/gone.err" ||
    fail "an exited process is not reported as such: $(cat "$tmp/gone.err")"

[ -z "${unprivileged_skipped:-}" ] || skip "the unprivileged case needs root (to run as another user)"
echo PASS
