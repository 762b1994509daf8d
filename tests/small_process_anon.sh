#!/usr/bin/env bash
# Issue 22 part 2: a process that never leaves the start-up phase costs at
# most 32 KB of anonymous memory over glibc's allocator.  Each program runs
# asleep after its start, once under glibc and once with LIB preloaded, three
# times; the medians of Anonymous (/proc/PID/smaps_rollup) are compared.  A
# process that made a reservation (a PROT_NONE mapping of 1 GiB or more) has
# left the phase, and the case proves nothing: that fails too.
# Usage: small_process_anon.sh LIBRARY
set -u
lib=$(readlink -f "${1:?usage: small_process_anon.sh LIBRARY}")
limit=32
failed=0
[ -r /proc/self/smaps_rollup ] || { echo "SKIPPED: no /proc/PID/smaps_rollup"; exit 77; }

anon_of() { awk '$1 == "Anonymous:" { print $2 }' "/proc/$1/smaps_rollup"; }
reserved() {  # reserved PID: true if a PROT_NONE mapping of >= 1 GiB exists
  local start end perms rest
  while read -r range perms rest; do
    [ "$perms" = "---p" ] || continue
    start=$((16#${range%-*})) end=$((16#${range#*-}))
    [ $((end - start)) -ge $((1 << 30)) ] && return 0
  done <"/proc/$1/maps"
  return 1
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

measure() {  # measure PRELOAD CMD...: prints the median Anonymous KB
  local pre=$1 v=() pid i
  shift
  for i in 1 2 3; do
    env BTM_CONF= LD_PRELOAD="$pre" "$@" &
    pid=$!
    sleep 0.5
    v+=("$(anon_of $pid)")
    if [ -n "$pre" ] && reserved $pid; then
      echo "FAIL: $* left the start-up phase (it made a reservation)" >&2
      kill $pid
      wait $pid 2>/dev/null
      return 1
    fi
    kill $pid
    wait $pid 2>/dev/null
  done
  median3 "${v[@]}"
}

check() {
  local glibc btm
  glibc=$(measure "" "$@") && btm=$(measure "$lib" "$@") || { failed=1; return; }
  if [ $((btm - glibc)) -gt $limit ]; then
    echo "FAIL: $*: $btm KB anonymous under btmalloc, $glibc KB under glibc (over by more than $limit KB)"
    failed=1
  else
    echo "ok: $*: $btm KB anonymous under btmalloc, $glibc KB under glibc"
  fi
}

check /usr/bin/sleep 30
check /bin/sh -c 'sleep 30; :'
check /usr/bin/tail -f /dev/null
exit $failed
