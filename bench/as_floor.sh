#!/usr/bin/env bash
# The smallest `ulimit -v` (KB, within 64) under which a command exits 0,
# found by bisection (issue 22, the address-space floor).
#   as_floor.sh LIB|"" CMD...   (LIB preloaded; "" for glibc's allocator)
set -u
pre=$1
shift
ok() {
  local limit=$1
  shift
  # Bounded: Debian's python3 spins for ever (glibc's allocator, no
  # preload) at some limits ~700 KB below its floor; a run that hangs fails.
  (ulimit -v "$limit" && exec timeout -s KILL 20 env BTM_CONF= LD_PRELOAD="$pre" "$@") >/dev/null 2>&1
}
lo=1000 hi=200000
ok $hi "$@" || { echo "as_floor.sh: fails even at $hi KB" >&2; exit 1; }
while ((hi - lo > 64)); do
  mid=$(((lo + hi) / 2))
  if ok $mid "$@"; then hi=$mid; else lo=$mid; fi
done
echo $hi
