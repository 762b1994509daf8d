#!/usr/bin/env bash
# Process names are chosen by whoever runs the process; the tools print them
# to root's terminal and to JSON consumers.  Two btmalloc processes, named by
# prctl(PR_SET_NAME) and argv[0]: "x ESC ]0;pwned BEL" (retitles a terminal)
# and "a \xff \xfe" (not UTF-8).  btmctl status and btm-pageout --dry-run must
# print neither control bytes nor invalid UTF-8, and --json must parse.
#   hostile_names_test.sh BTMCTL BTM_PAGEOUT LIBBTMALLOC NAMED_CHILD
set -u
btmctl=$1 pageout=$2 lib=$3 child=$4
py=/usr/bin/python3
[ -x $py ] || { echo "SKIPPED: needs $py to check the JSON"; exit 77; }
tmp=$(mktemp -d /tmp/btm-names-XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

start() {  # start NAME: argv[0] and comm are NAME
  ( export LD_PRELOAD=$lib BTM_CONF=; exec -a "$1" "$child" "$1" >"$tmp/ready.$#.${#pids[@]}" ) &
  pids+=($!)
  for _ in $(seq 100); do grep -q ready "$tmp/ready.$#.$((${#pids[@]} - 1))" 2>/dev/null && return; sleep 0.05; done
  fail "child $(printf %q "$1") did not start"
}
escape=$'x\033]0;pwned\007' binary=$'a\xff\xfe'
start "$escape"; start "$binary"

# No C0/C1 control byte (newline aside), no DEL, and valid UTF-8.
clean() {  # clean WHAT FILE
  $py - "$2" <<'PY' || fail "$1 printed raw control bytes or invalid UTF-8: $(od -c "$2" | head -20)"
import sys
data = open(sys.argv[1], "rb").read()
text = data.decode("utf-8")  # raises on invalid UTF-8
bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]
sys.exit(1 if bad else 0)
PY
}
has() { grep -qF -- "$2" "$3" || fail "$1: no '$2' in: $(cat "$3")"; }

"$btmctl" status >"$tmp/status" 2>&1 || fail "btmctl status exited $?"
clean "btmctl status" "$tmp/status"
has "btmctl status" 'x\x1b]0;pwned\x07 x\x1b]0;pwned\x07' "$tmp/status"
has "btmctl status" 'a\xff\xfe a\xff\xfe' "$tmp/status"

for p in "${pids[@]}"; do
  "$pageout" --pid "$p" --dry-run >"$tmp/text.$p" 2>&1
  clean "btm-pageout --dry-run" "$tmp/text.$p"
  "$pageout" --pid "$p" --dry-run --json >"$tmp/json.$p" 2>"$tmp/err.$p"
  clean "btm-pageout --json" "$tmp/json.$p"
  $py - "$tmp/json.$p" "$p" >"$tmp/comm.$p" <<'PY' || fail "btm-pageout --json: not valid JSON: $(cat "$tmp/json.$p")"
import json, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
print(ascii([e["comm"] for e in doc["processes"] if e["pid"] == int(sys.argv[2])]))
PY
done
has "btm-pageout text" '(x\x1b]0;pwned\x07)' "$tmp/text.${pids[0]}"
has "btm-pageout text" '(a\xff\xfe)' "$tmp/text.${pids[1]}"
has "btm-pageout --json" "['x\\x1b]0;pwned\\x07']" "$tmp/comm.${pids[0]}"
has "btm-pageout --json" "['a\\ufffd\\ufffd']" "$tmp/comm.${pids[1]}"
[ $status -eq 0 ] && echo "ok: hostile process names"
exit $status
