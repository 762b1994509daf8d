#!/usr/bin/env bash
# Issue 22: services under systemd's seccomp filters.
#  1. `btmctl enable` says what the library does under the unit's filter
#     (offline tree, --root): inline memory return under SystemCallFilter=
#     and the other settings that install a filter, a warning when the
#     filter kills (no SystemCallErrorNumber=), the background thread in a
#     unit without one.
#  2. Where systemd is the running init and we are root: a real unit with
#     SystemCallFilter=@system-service and btmctl's drop-in runs a churn
#     that would start the background thread, to the end.  Elsewhere
#     SKIPPED (exit 77) with the reason, after part 1 passed.
#   seccomp_unit_test.sh BTMCTL LIBRARY CHURN
set -u
btmctl=$1
lib_file=$(readlink -f "$2")
churn=$(readlink -f "$3")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/btm-seccomp-unit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/packaging/lib.sh"

root=$tmp/root
lib=/usr/lib/btm-test/libbtmalloc.so.1
units=$root/usr/lib/systemd/system
mkdir -p "$root/usr/lib/btm-test" "$units/soft.service.d"
cp "$lib_file" "$root$lib"
opts=(--root "$root" --library "$lib")

printf '[Service]\nExecStart=/bin/true\nSystemCallFilter=@system-service\n' >"$units/hard.service"
printf '[Service]\nExecStart=/bin/true\nSystemCallFilter=~@aio\nSystemCallErrorNumber=EPERM\n' >"$units/errno.service"
printf '[Service]\nExecStart=/bin/true\nMemoryDenyWriteExecute=yes\n' >"$units/mdwe.service"
printf '[Service]\nExecStart=/bin/true\nSystemCallFilter=@system-service\n' >"$units/soft.service"
# A drop-in's empty SystemCallFilter= resets the list: no filter left.
printf '[Service]\nSystemCallFilter=\n' >"$units/soft.service.d/10-reset.conf"
printf '[Service]\nExecStart=/bin/true\n' >"$units/plain.service"

run 0 "$btmctl" enable hard "${opts[@]}"
has "$out" "hard.service: runs under a seccomp filter (SystemCallFilter=@system-service)"
has "$out" "returns memory inline"
has "$out" "kills the process"
run 0 "$btmctl" enable errno "${opts[@]}"
has "$out" "errno.service: runs under a seccomp filter (SystemCallFilter=~@aio)"
grep -qF "kills the process" <<<"$out" && fail "errno.service: a filter that fails calls was said to kill: $out"
run 0 "$btmctl" enable mdwe "${opts[@]}"
has "$out" "mdwe.service: runs under a seccomp filter (MemoryDenyWriteExecute=yes)"
run 0 "$btmctl" enable soft "${opts[@]}"
has "$out" "soft.service: no seccomp filter"
run 0 "$btmctl" enable plain "${opts[@]}"
has "$out" "plain.service: no seccomp filter"
has "$out" "background thread"
[ $status -eq 0 ] || exit 1

if [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ] || [ ! -d /run/systemd/system ]; then
  echo "SKIPPED: systemd is not PID 1 here: no unit can run (the btmctl enable part passed)"
  exit 77
fi
if [ "$(id -u)" != 0 ]; then
  echo "SKIPPED: not root: cannot install a unit (the btmctl enable part passed)"
  exit 77
fi
unit=btm-seccomp-test-$$.service
cat >"/run/systemd/system/$unit" <<UNIT
[Service]
Type=oneshot
Environment=BTM_CONF=
ExecStart=$churn stress rounds=2
SystemCallFilter=@system-service
UNIT
cleanup() {
  "$btmctl" disable "$unit" --library "$lib_file" >/dev/null 2>&1
  rm -f "/run/systemd/system/$unit"
  systemctl daemon-reload
  rm -rf "$tmp"
}
trap cleanup EXIT
run 0 "$btmctl" enable "$unit" --library "$lib_file"
has "$out" "runs under a seccomp filter"
systemctl daemon-reload
systemctl start "$unit" || fail "$unit failed: $(systemctl show -p Result -p ExecMainStatus "$unit")"
result=$(systemctl show -p Result --value "$unit")
[ "$result" = success ] || fail "$unit: Result=$result"
exit $status
