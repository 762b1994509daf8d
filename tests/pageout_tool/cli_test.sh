#!/bin/bash
# btm-pageout's exit codes: --help 0; bad arguments 2 with a usage hint;
# no configured signal and no --signal 2.  Usage: cli_test.sh BTM_PAGEOUT
set -u
tool=$1
fail() { echo "FAIL: $*"; exit 1; }
expect() {  # STATUS ARGS...
    local want=$1; shift
    "$tool" "$@" > /tmp/pageout_cli.$$ 2>&1; local rc=$?
    [ "$rc" = "$want" ] || { cat /tmp/pageout_cli.$$; rm -f /tmp/pageout_cli.$$; fail "btm-pageout $* exited $rc, expected $want"; }
    rm -f /tmp/pageout_cli.$$
}
expect 0 --help
"$tool" --help | grep -q -- "--idle-for" || fail "--help does not describe --idle-for"
expect 2
expect 2 --bogus
expect 2 --pid
expect 2 --pid abc --signal RTMIN+3
expect 2 --pid 0 --signal RTMIN+3
expect 2 --pid 1 --signal SIGTERM
expect 2 --pid 1 --signal RTMIN+99
expect 2 --pid 1 --signal RTMIN+3 --idle-for 5x
expect 2 --pid 1 --signal RTMIN+3 --min-rss lots
expect 2 --pid 1 --signal RTMIN+3 --min-age -1
expect 2 --all --pid 1 --signal RTMIN+3
# No pageout_signal in the (empty) configuration and no --signal.
if ! grep -qsi '^[[:space:]]*pageout_signal' /etc/btmalloc.conf /etc/btmalloc.conf.d/*.conf; then
    expect 2 --pid $$
fi
"$tool" --pid 1 2>&1 | grep -q "Try 'btm-pageout --help'" || true
echo PASS
