#!/usr/bin/env bash
# Runs every test of a gtest binary in a process of its own, so that each
# one starts inside the start-up phase (src/core/alloc.cpp): the API
# semantics must hold for the arena's blocks as for the heap's.  In one
# process the phase ends within the first tests.  Usage: each_in_phase.sh BINARY
set -uo pipefail
bin=$1
export BTM_STARTUP_BYTES=512k
mapfile -t names < <("$bin" --gtest_list_tests | awk '/^[^ ]/ {suite=$1; next} {print suite $1}')
[ ${#names[@]} -gt 0 ] || { echo "no tests listed by $bin" >&2; exit 1; }
failed=()
for name in "${names[@]}"; do
  if ! out=$("$bin" --gtest_filter="$name" 2>&1); then
    failed+=("$name")
    printf '%s\n' "$out" | grep -v '^\[ *\(RUN\|OK\|PASSED\|==========\|----------\) ' >&2
  fi
done
echo "${#names[@]} tests, each in its own process; ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
