#!/bin/bash
# Issue 17, cases 1 and 2: `btm-pageout --all` on a machine whose processes
# own their signals.  In a PID namespace of its own (so --all sees only the
# test's processes), as root:
#   all   a program with its own handlers for every RT signal, a
#         systemd-like signalfd reader (RTMIN+3 = halt = exit 99), an
#         impostor without btmalloc that maps libbtmalloc-data.bin, main
#         threads in sleep(30), poll() with a timeout and nanosleep(), a
#         Go-like runtime with handlers on many signals and threads in timed
#         waits, a process with a btmalloc older than the descriptor, and a
#         plain btmalloc process.  All must stay alive and uninterrupted
#         (exit 0 after their wait), the btmalloc ones are paged out, and the
#         report says why it skipped each other one.
#   pid1  the signalfd reader, preloaded, is PID 1 of the namespace and
#         `btm-pageout --all` runs inside it: PID 1 survives, untouched, and
#         is paged out.
# Usage: safety_test.sh all|pid1 BTM_PAGEOUT LIBBTMALLOC BINDIR OLD_LIB
set -u
mode=$1 tool=$2 lib=$3 bin=$4 old_lib=$5
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root: a PID namespace (unshare -p) and process_madvise (CAP_SYS_NICE)"
command -v unshare > /dev/null && command -v nsenter > /dev/null || skip "needs unshare and nsenter (util-linux)"
unshare -p -f --mount-proc true 2> /dev/null || skip "unshare -p -f --mount-proc is not permitted here"
export -n BTM_CONF BTM_PAGEOUT BTM_ENABLED
export BTM_CONF=
wait_s=30

if [ "$mode" = pid1 ]; then
    unshare -p -f --mount-proc --kill-child env LD_PRELOAD="$lib" "$bin/pageout_sigfd" "$tmp/init.ready" 12 \
        > "$tmp/init.out" 2>&1 &
    ns=$!
    pids+=("$ns")
    for _ in $(seq 200); do grep -qs ready "$tmp/init.ready" && break; sleep 0.05; done
    grep -qs ready "$tmp/init.ready" || fail "the namespace's init did not start"
    init=$(pgrep -P "$ns" | head -1)
    [ -n "$init" ] || fail "no init process under unshare"
    sleep 2
    nsenter -t "$init" -p -m "$tool" --all --min-age 0 --wait 1 > "$tmp/report" 2>&1
    rc=$?
    cat "$tmp/report"
    [ "$rc" = 0 ] || fail "btm-pageout --all inside the namespace exited $rc"
    grep -q "^paged   1 (pageout_sigfd): " "$tmp/report" || fail "PID 1 (btmalloc, accepts pageout) was not paged"
    wait "$ns"; st=$?
    cat "$tmp/init.out"
    [ "$st" = 0 ] || fail "the namespace's PID 1 ended with status $st (99 = it read 'halt')"
    echo PASS
    exit 0
fi

# mode all: re-run inside a fresh PID namespace.
if [ "${BTM_SAFETY_INNER:-}" != 1 ]; then
    BTM_SAFETY_INNER=1 unshare -p -f --mount-proc bash "$0" "$@"
    exit $?
fi

pre() { exec env LD_PRELOAD="$lib" "$@"; }  # exec: $! is the program itself
start_bg own pre "$bin/pageout_own" "$tmp/own.ready" $wait_s
start_bg sigfd pre "$bin/pageout_sigfd" "$tmp/sigfd.ready" $wait_s
start_bg impostor "$bin/pageout_impost" "$tmp/impostor.ready" $wait_s "$tmp/libbtmalloc-data.bin"
start_bg sleep pre "$bin/pageout_sleeper" "$tmp/sleep.ready" $wait_s sleep
start_bg poll pre "$bin/pageout_sleeper" "$tmp/poll.ready" $wait_s poll
start_bg nanosleep pre "$bin/pageout_sleeper" "$tmp/nanosleep.ready" $wait_s nanosleep
start_bg golike pre "$bin/pageout_golike" "$tmp/golike.ready" $wait_s
start_bg plain pre "$bin/pageout_cold_child" "$tmp/plain.result"
start_plain old env BTM_TEST_OLD_MARK="$tmp/old.signalled" LD_PRELOAD="$old_lib" sleep $wait_s
sleep 2

"$tool" --all --min-age 0 --wait 1 > "$tmp/report" 2>&1
rc=$?
cat "$tmp/report"
[ "$rc" = 0 ] || fail "btm-pageout --all exited $rc"
for name in own sigfd sleep poll nanosleep golike plain; do
    p=pid_$name
    grep -q "^paged   ${!p} " "$tmp/report" || fail "$name (btmalloc, accepts pageout) was not paged"
done
grep -q "^skipped $pid_impostor (pageout_impost): maps libbtmalloc-data.bin, but no file it maps exports btmalloc's descriptor: not btmalloc" \
    "$tmp/report" || fail "no reason for the impostor"
grep -q "^skipped $pid_old (sleep): btmalloc too old for safe pageout.*restart it" "$tmp/report" ||
    fail "no reason for the process with an old btmalloc"

kill -TERM "$pid_plain"
for name in own sigfd impostor sleep poll nanosleep golike plain old; do
    expect_exit "$name" 0  # 3 = EINTR, 4 = a short sleep, 7 = a handler ran, 99 = halt
done
[ -e "$tmp/old.signalled" ] && fail "the old btmalloc's signal handler ran"
grep -q "pageouts=1 intact=1" "$tmp/plain.result" || fail "the plain btmalloc process: $(cat "$tmp/plain.result")"
echo PASS
