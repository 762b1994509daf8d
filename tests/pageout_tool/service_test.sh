#!/bin/bash
# Issue 17, case 4: the timer's service, with no configuration at all (no
# /etc/default/btm-pageout, no /etc/btmalloc.conf), exits 0 or 1 (its
# SuccessExitStatus) and pages out an idle btmalloc process.  Where systemd
# is PID 1 this would be systemd-run; here it usually is not, so the unit's
# ExecStart line is run by hand with the unit's own Environment= default,
# as root, inside a PID namespace (so --all sees only this test's process)
# with an empty /etc/default and /etc/btmalloc.conf* hidden by a private
# mount namespace.
# Usage: service_test.sh SERVICE_FILE LIBBTMALLOC COLD_CHILD
set -u
unit=$1 lib=$2 child=$3
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root: process_madvise (CAP_SYS_NICE), a private mount and PID namespace"
unshare -m -p -f --mount-proc true 2> /dev/null || skip "unshare -m -p -f is not permitted here"
if [ "${BTM_SERVICE_INNER:-}" != 1 ]; then
    if [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
        echo "note: systemd is PID 1, but running the ExecStart line by hand keeps the test off the real manager"
    else
        echo "systemd is not PID 1: ran ExecStart by hand"
    fi
    BTM_SERVICE_INNER=1 unshare -m -p -f --mount-proc --propagation private bash "$0" "$@"
    exit $?
fi

# No configuration anywhere: empty directories over /etc/default and
# /etc/btmalloc.conf.d, an empty file over /etc/btmalloc.conf.
mkdir -p "$tmp/empty"
mount --bind "$tmp/empty" /etc/default 2>/dev/null || fail "cannot hide /etc/default"
[ -d /etc/btmalloc.conf.d ] && mount --bind "$tmp/empty" /etc/btmalloc.conf.d
if [ -e /etc/btmalloc.conf ]; then : > "$tmp/empty.conf"; mount --bind "$tmp/empty.conf" /etc/btmalloc.conf; fi
export -n BTM_CONF BTM_PAGEOUT BTM_ENABLED BTM_PAGEOUT_ARGS

# The unit's default arguments and its ExecStart, as systemd would expand them.
args=$(sed -n 's/^Environment="BTM_PAGEOUT_ARGS=\(.*\)"$/\1/p' "$unit")
exec_line=$(sed -n 's/^ExecStart=//p' "$unit")
ok_status=$(sed -n 's/^SuccessExitStatus=//p' "$unit")
[ -n "$args" ] && [ -n "$exec_line" ] || fail "no Environment=BTM_PAGEOUT_ARGS or ExecStart in $unit"
[ "$ok_status" = 1 ] || fail "SuccessExitStatus is '$ok_status', expected 1"
grep -q '^EnvironmentFile=-/etc/default/btm-pageout$' "$unit" || fail "the defaults file is not optional"
min_age=$(sed -n 's/.*--min-age \([0-9]*\).*/\1/p' <<< "$args")
echo "ExecStart: $exec_line  (BTM_PAGEOUT_ARGS=$args)"

# An idle btmalloc process whose cold set has aged past the unit's --min-age.
start_bg idle env LD_PRELOAD="$lib" BTM_TEST_IDLE=1 "$child" "$tmp/idle.result"
sleep $(( ${min_age:-0} + 2 ))

BTM_PAGEOUT_ARGS=$args
eval "set -- ${exec_line//\$BTM_PAGEOUT_ARGS/$BTM_PAGEOUT_ARGS}"
"$@" > "$tmp/report" 2>&1
rc=$?
cat "$tmp/report"
[ "$rc" = 0 ] || [ "$rc" = 1 ] || fail "the service would fail: exit status $rc"
grep -q "^paged   $pid_idle (pageout_cold_ch): " "$tmp/report" || fail "the idle btmalloc process was not paged out"
kill -TERM "$pid_idle"
expect_exit idle 0
grep -q "pageouts=1 intact=1" "$tmp/idle.result" || fail "idle process: $(cat "$tmp/idle.result")"
echo PASS
