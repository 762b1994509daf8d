#!/usr/bin/env bash
# Issue 22 part 3: btmalloc starts wherever glibc's allocator starts plus at
# most 2 MB of address space.  For each program, glibc's floor (the smallest
# `ulimit -v` under which it exits 0) is found here by bisection
# (bench/as_floor.sh), then the program must exit 0 with btmalloc preloaded
# at that floor + 2048 KB, and at every 8 KB above it for 2 MB more, and
# print what it prints under glibc there.
# A program that is not installed is SKIPPED; all skipped exits 77.
# Usage: as_floor_test.sh LIBRARY FLOOR_SCRIPT [python3|ls]...  (default: both)
# AS_FLOOR_MARGIN: KB over glibc's floor checked first (default 2048, the target;
#   less shows room below it).
# AS_FLOOR_SWEEP: KB above that also checked (default 2048; 0: that limit only).
# AS_FLOOR_STEP: KB between the limits checked (default 8: a heap reservation
#   that just fits and leaves the program nothing fails in a band ~11 KB wide).
set -u
lib=$(readlink -f "${1:?usage: as_floor_test.sh LIBRARY FLOOR_SCRIPT}")
floor=${2:?usage: as_floor_test.sh LIBRARY FLOOR_SCRIPT}
margin=${AS_FLOOR_MARGIN:-2048} sweep=${AS_FLOOR_SWEEP:-2048} step=${AS_FLOOR_STEP:-8}
failed=0 checked=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/btm-asfloor.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

run_at() {  # run_at LIMIT PRELOAD OUT CMD...: exit status of CMD under the limit
  local limit=$1 pre=$2 out=$3
  shift 3
  (ulimit -v "$limit" && exec timeout -s KILL 20 env BTM_CONF= LD_PRELOAD="$pre" "$@") >"$out" 2>"$out.err"
}

check() {
  if [ ! -x "$1" ]; then
    echo "SKIPPED: $1 is not installed"
    return
  fi
  local base
  base=$(bash "$floor" "" "$@") || { echo "FAIL: no glibc floor for $*"; failed=1; return; }
  checked=$((checked + 1))
  # Every limit from the floor + 2 MB on, not only that one: a reservation
  # that fits, then leaves the program short, fails in a band above it.
  local limit
  for ((limit = base + margin; limit <= base + margin + sweep; limit += step)); do
    run_at "$limit" "" "$tmp/glibc" "$@" || { echo "FAIL: $* under glibc at $limit KB"; failed=1; return; }
    local rc=0
    run_at "$limit" "$lib" "$tmp/btm" "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "FAIL: $* exits $rc under btmalloc at $limit KB (glibc's floor $base KB + $((limit - base))):"
      head -5 "$tmp/btm.err"
      failed=1
      return
    elif ! cmp -s "$tmp/glibc" "$tmp/btm"; then
      echo "FAIL: $* prints something else under btmalloc at $limit KB"
      failed=1
      return
    fi
  done
  echo "ok: $* at $((base + margin))..$((base + margin + sweep)) KB (glibc's floor $base KB + $margin and up)"
}

shift 2
[ $# -eq 0 ] && set -- python3 ls
for prog in "$@"; do
  case $prog in
    python3) check /usr/bin/python3 -c pass ;;
    ls) check /bin/ls -la /usr/bin ;;
    *) echo "usage: as_floor_test.sh LIBRARY FLOOR_SCRIPT [python3|ls]..." >&2; exit 2 ;;
  esac
done
[ "$checked" -eq 0 ] && exit 77
exit "$failed"
