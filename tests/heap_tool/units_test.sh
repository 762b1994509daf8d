#!/bin/bash
# systemd-analyze verify prints nothing for btm-metrics.service (configured
# for the build tree's btmctl) and btm-metrics.timer; mandoc -T lint is
# clean on the man pages that document them.
# Usage: units_test.sh SERVICE TIMER MANPAGE...
set -u
service=$1 timer=$2
shift 2
command -v systemd-analyze > /dev/null || { echo "SKIPPED: no systemd-analyze"; exit 77; }
command -v mandoc > /dev/null || { echo "SKIPPED: no mandoc"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp "$service" "$timer" "$tmp/"
out=$(systemd-analyze verify --man=no "$tmp/btm-metrics.service" "$tmp/btm-metrics.timer" 2>&1)
[ -z "$out" ] || { echo "FAIL: systemd-analyze verify:"; echo "$out"; exit 1; }
out=$(mandoc -T lint -W warning "$@" 2>&1)
[ -z "$out" ] || { echo "FAIL: mandoc -T lint:"; echo "$out"; exit 1; }
echo PASS
