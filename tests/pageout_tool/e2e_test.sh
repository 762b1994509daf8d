#!/bin/bash
# End to end, one process at a time (--pid): btm-pageout pages out a btmalloc
# process from outside (the count it writes back into the descriptor goes
# up, the data stays intact, the process stays alive) and skips, each with
# its reason: a program without btmalloc, a program whose configuration says
# pageout = off in its [program] section, and a process whose btmalloc
# predates the descriptor (reported "too old ... restart it", never
# signalled).  A process that exits after the pageout is reported "gone"
# and not counted (issue 17, case 3).  Without privilege each process gets
# the missing one as its reason.  btmctl status shows, under each
# process, whether it accepts pageout and its last run.  A process in a time
# namespace is judged on its own clock.  With swap (a
# temporary file, as root) the cold set must leave RAM.
# Usage: e2e_test.sh BTM_PAGEOUT LIBBTMALLOC COLD_CHILD REFUSER OLD_LIB BTMCTL
set -u
tool=$1 lib=$2 child=$3 refuser=$4 old_lib=$5 btmctl=$6
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "process_madvise on another process needs root (CAP_SYS_NICE)"
export -n BTM_CONF BTM_PAGEOUT BTM_ENABLED
printf '[program pageout_refuser]\npageout = off\n' > "$tmp/refuse.conf"

start_bg plain env BTM_CONF= LD_PRELOAD="$lib" "$child" "$tmp/plain.result"
start_bg refuser env BTM_CONF="$tmp/refuse.conf" LD_PRELOAD="$lib" "$refuser" "$tmp/refuser.result"
start_bg gone env BTM_CONF= BTM_TEST_EXIT_AFTER_PAGEOUT=1 LD_PRELOAD="$lib" "$child" "$tmp/gone.result"
start_plain old env BTM_TEST_OLD_MARK="$tmp/old.signalled" LD_PRELOAD="$old_lib" sleep 30
start_plain plainsleep sleep 30
sleep 2

"$tool" --pid "$pid_plain" --pid "$pid_refuser" --pid "$pid_old" --pid "$pid_plainsleep" --min-age 1 --wait 1 \
    > "$tmp/report" 2>&1
rc=$?
cat "$tmp/report"
# Skips are not failures: exit 0 when every target was paged.
[ "$rc" = 0 ] || fail "exit status $rc, expected 0"
grep -q "^paged   $pid_plain (pageout_cold_ch): [0-9.]* MiB of cold memory; rss" "$tmp/report" ||
    fail "the btmalloc child was not paged"
grep -q "^skipped $pid_refuser .*refuses pageout by configuration (pageout = off)" "$tmp/report" ||
    fail "no reason for the child whose [program] section says pageout = off"
grep -q "^skipped $pid_old .*btmalloc too old for safe pageout.*restart it" "$tmp/report" ||
    fail "no 'too old' for the process with a btmalloc that predates the descriptor"
grep -q "^skipped $pid_plainsleep (sleep): does not run with btmalloc" "$tmp/report" || fail "no reason for sleep"
mib=$(sed -n "s/^paged   $pid_plain .*: \([0-9.]*\) MiB of cold memory.*/\1/p" "$tmp/report")
awk -v m="$mib" 'BEGIN { exit !(m >= 50) }' || fail "only $mib MiB of the ~60 MiB cold set was paged out"

# btmctl status: the line under each of our processes.
"$btmctl" status --preload-file "$tmp/no-preload" > "$tmp/status" 2>&1 || { cat "$tmp/status"; fail "btmctl status failed"; }
pageout_line() { awk -v p="$1" '$1 == p { getline; print; exit }' "$tmp/status"; }
pageout_line "$pid_plain" | grep -q "pageout: accepted; last run [0-9-]* [0-9:]* UTC, [0-9.]* MiB, 1 run(s)" ||
    { cat "$tmp/status"; fail "btmctl status does not show the pageout of the btmalloc child"; }
pageout_line "$pid_refuser" | grep -q "pageout: refused (pageout = off)" ||
    { cat "$tmp/status"; fail "btmctl status does not show that the refusing child refuses"; }

# JSON, dry run: the same selection, nothing done.
"$tool" --pid "$pid_plain" --pid "$pid_plainsleep" --dry-run --json > "$tmp/json" || fail "dry run failed"
/usr/bin/python3 - "$tmp/json" "$pid_plain" "$pid_plainsleep" <<'PY' || fail "JSON report"
import json, sys
r = json.load(open(sys.argv[1]))
st = {p["pid"]: p["status"] for p in r["processes"]}
assert r["dry_run"] is True, r
assert st[int(sys.argv[2])] == "selected" and st[int(sys.argv[3])] == "skipped", st
assert r["total"]["targets"] == 1, r
PY

# Without privilege (as nobody, no capabilities): its own process gets the
# missing capability as its reason, root's process the missing access.
if ! command -v setpriv > /dev/null; then
    echo "SKIPPED: unprivileged run: no setpriv (util-linux)"
else
    nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all)
    start_bg own "${nobody[@]}" env BTM_CONF= LD_PRELOAD="$lib" "$child" /dev/null
    sleep 2  # its cold set ages past --min-age
    "${nobody[@]}" "$tool" --pid "$pid_own" --pid "$pid_plain" --min-age 1 --wait 0 > "$tmp/nobody-report" 2>&1
    rc=$?
    cat "$tmp/nobody-report"
    [ "$rc" = 1 ] || fail "an unprivileged run exited $rc, expected 1"
    grep -q "^failed  $pid_own (pageout_cold_ch): EPERM: process_madvise needs root or CAP_SYS_NICE" \
        "$tmp/nobody-report" || fail "no reason for the missing CAP_SYS_NICE"
    grep -q "^skipped $pid_plain (pageout_cold_ch): cannot read its memory map.*another user's process without privilege" \
        "$tmp/nobody-report" || fail "no reason for another user's process"
    kill -TERM "$pid_own"
fi

# Only skipped processes: nothing to do, exit 1.
"$tool" --pid "$pid_plainsleep" > /dev/null; rc=$?
[ "$rc" = 1 ] || fail "nothing to do gave $rc, expected 1"

# Case 3: the process exits right after its pageout (it watches the count
# btm-pageout writes back): "gone", and its RSS is not counted as freed.
"$tool" --pid "$pid_gone" --min-age 0 --wait 2 > "$tmp/gone-report" 2>&1
cat "$tmp/gone-report"
grep -q "^gone    $pid_gone (pageout_cold_ch): exited after the pageout; its memory is not counted" \
    "$tmp/gone-report" || fail "the exited process is not reported as gone"
grep -q "^total: 1 process(es), 1 gone, 0.0 MiB of cold memory, rss 0.0 MiB -> 0.0 MiB" "$tmp/gone-report" ||
    fail "the gone process is counted in the total"

for p in "$pid_plain" "$pid_refuser" "$pid_old" "$pid_plainsleep"; do
    kill -0 "$p" 2>/dev/null || fail "process $p died"
done
[ -e "$tmp/old.signalled" ] && fail "the old btmalloc's signal handler ran"
kill -TERM "$pid_plain" "$pid_refuser"
expect_exit plain 0
expect_exit refuser 0
cat "$tmp/plain.result" "$tmp/refuser.result"
grep -q "pageouts=1 intact=1" "$tmp/plain.result" || fail "the count written back or the data is wrong"
grep -q "pageouts=0 intact=1" "$tmp/refuser.result" || fail "the refusing child was paged out, or its data changed"

# Issue 20: 100 MB of idle large blocks (their own mappings, as old as
# their allocation) are paged out too, and read back intact.
start_bg large env BTM_CONF= BTM_TEST_LARGE=1 BTM_TEST_IDLE=1 LD_PRELOAD="$lib" "$child" "$tmp/large.result"
sleep 2
"$tool" --pid "$pid_large" --min-age 1 --wait 1 > "$tmp/large-report" 2>&1 || { cat "$tmp/large-report"; fail "large blocks: btm-pageout failed"; }
mib=$(sed -n "s/^paged   $pid_large .*: \([0-9.]*\) MiB of cold memory.*/\1/p" "$tmp/large-report")
awk -v m="$mib" 'BEGIN { exit !(m >= 100) }' || { cat "$tmp/large-report"; fail "only '$mib' MiB of 100 MiB of idle large blocks paged out"; }
kill -TERM "$pid_large"
expect_exit large 0
grep -q "pageouts=1 intact=1" "$tmp/large.result" || fail "large blocks: $(cat "$tmp/large.result")"

# Slab stamps are the process's own CLOCK_MONOTONIC_COARSE: in a time
# namespace a day ahead, the cold set must still be found, and nothing is a
# day old.
if ! unshare -T --monotonic=86400 true 2>/dev/null; then
    echo "SKIPPED: time namespace: unshare -T is not permitted here"
else
    unshare -T --monotonic=86400 -f env BTM_CONF= LD_PRELOAD="$lib" "$child" "$tmp/timens.result" \
        > "$tmp/timens.out" 2>&1 &
    ns=$!
    pids+=("$ns")
    for _ in $(seq 200); do grep -qs ready "$tmp/timens.out" && break; sleep 0.05; done
    p=$(pgrep -P "$ns" | head -1)
    [ -n "$p" ] || fail "the child in a time namespace did not start"
    sleep 2
    "$tool" --pid "$p" --min-age 86000 --dry-run > "$tmp/timens-report" 2>&1
    grep -q "^would page out $p .*: 0.0 MiB of cold memory" "$tmp/timens-report" ||
        { cat "$tmp/timens-report"; fail "slabs a few seconds old counted as a day old in a time namespace"; }
    "$tool" --pid "$p" --min-age 1 --wait 0 > "$tmp/timens-report" 2>&1
    grep -q "^paged   $p .*: [1-9][0-9.]* MiB of cold memory" "$tmp/timens-report" ||
        { cat "$tmp/timens-report"; fail "the cold set of a process in a time namespace was not found"; }
    kill -TERM "$p"
    wait "$ns" || fail "the child in a time namespace exited badly"
    grep -q "pageouts=1 intact=1" "$tmp/timens.result" || fail "time namespace child: $(cat "$tmp/timens.result")"
fi

# With swap, the cold set must really leave RAM: swapped NAME MIN_DROP_KB
# [VAR=VALUE...] runs the child (its environment extended), pages it out and
# wants RSS to drop by MIN_DROP_KB and the data back intact.
swapped() {
    local name=$1 drop=$2
    shift 2
    start_bg "$name" env BTM_CONF= "$@" LD_PRELOAD="$lib" "$child" "$tmp/$name.result"
    local p=pid_$name
    sleep 2
    local rss0 rss1
    rss0=$(vmrss "${!p}")
    "$tool" --pid "${!p}" --min-age 1 --wait 1 > "$tmp/swap-report" 2>&1 ||
        { cat "$tmp/swap-report"; fail "$name: btm-pageout failed with swap on"; }
    rss1=$(vmrss "${!p}")
    echo "$name, with swap: RSS ${rss0} kB -> ${rss1} kB"
    (( rss0 - rss1 >= drop )) || fail "$name: RSS dropped by only $(( rss0 - rss1 )) kB with swap on"
    kill -TERM "${!p}"
    expect_exit "$name" 0
    grep -q "intact=1" "$tmp/$name.result" || fail "$name: the swapped-out data came back corrupted"
}
if ! swap_on; then
    echo "SKIPPED: RSS drop with swap: $swap_why"
else
    # The cold set is ~60 MB (61440 objects of 1000 B): at least 80% of it
    # must go; of 100 MB of idle large blocks, 80 MB.
    swapped swapped 48000
    swapped large_swapped 80000 BTM_TEST_LARGE=1 BTM_TEST_IDLE=1
fi
echo PASS
