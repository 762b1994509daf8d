#!/bin/bash
# systemd-analyze verify prints nothing for btm-pageout.service (configured
# for the build tree's binary) and btm-pageout.timer; mandoc -T lint is clean
# on man/btm-pageout.8.  Usage: units_test.sh SERVICE TIMER MANPAGE
set -u
service=$1 timer=$2 man=$3
command -v systemd-analyze > /dev/null || { echo "SKIPPED: no systemd-analyze"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp "$service" "$timer" "$tmp/"
out=$(systemd-analyze verify --man=no "$tmp/btm-pageout.service" "$tmp/btm-pageout.timer" 2>&1)
[ -z "$out" ] || { echo "FAIL: systemd-analyze verify:"; echo "$out"; exit 1; }
if command -v mandoc > /dev/null; then
    out=$(mandoc -T lint -W warning "$man" 2>&1)
    [ -z "$out" ] || { echo "FAIL: mandoc -T lint:"; echo "$out"; exit 1; }
else
    echo "no mandoc: man page not linted"
fi
echo PASS
