#!/usr/bin/env bash
# Builds the allocator's libFuzzer targets with clang and runs one.
#   tests/fuzz/build.sh [OUT_DIR] [alloc|misuse] [-- libFuzzer options...]
# e.g. tests/fuzz/build.sh /tmp/allocfuzz alloc -- -max_total_time=600
# The library's sources are compiled in (with coverage, not with ASan: the
# allocator is what is tested), edge coverage only: with libFuzzer's
# comparison tracing the fuzzer learns the free-mark key from free's
# double-free compare and writes it into inputs, and a live block holding
# the key in its second word is, by design, reported as a double free.  New inputs go to OUT_DIR/corpus_<target>;
# merge small ones into tests/fuzz/corpus_<target>/ to keep them.
# FUZZ_BUILD_ONLY=1 only builds both.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build-fuzz}
[ $# -gt 0 ] && shift
target=${1:-alloc}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
case $target in alloc|misuse) ;; *) echo "usage: $0 [OUT_DIR] [alloc|misuse] [-- libFuzzer options...]" >&2; exit 2;; esac
cxx=${CLANGXX:-$(command -v clang++-14 || command -v clang++)}
mkdir -p "$out/lib" "$out/corpus_$target"
flags=(-std=c++20 -g -O2 -fconstexpr-steps=100000000 -fno-exceptions -fno-rtti -fvisibility=hidden -fPIC
       -DBTM_CFG_HARDENING=1 -DBTM_CFG_PARTITIONING=1 -DBTM_CFG_OVERRIDE_LIBC=1 -DBTM_CFG_ASAN=0 -DBTM_CFG_URING=0
       -I"$repo/src" -I"$repo/include")
objs=()
for src in $(cd "$repo/src" && ls */*.cpp | grep -v '^os/dso_link\.cpp$'); do
  obj="$out/lib/${src//\//_}.o"
  # A header newer than the object counts too: objects of an older Bin
  # layout linked with newer ones made a fuzzer that reported false double
  # frees.
  if [ ! -e "$obj" ] || [ "$repo/src/$src" -nt "$obj" ] || [ "$0" -nt "$obj" ] ||
    [ -n "$(find "$repo/src" "$repo/include" -name '*.h' -newer "$obj" -print -quit)" ]; then
    "$cxx" "${flags[@]}" -fsanitize-coverage=inline-8bit-counters,pc-table -c "$repo/src/$src" -o "$obj"
  fi
  objs+=("$obj")
done
"$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer "$here/fuzz_alloc.cpp" "${objs[@]}" -lpthread -ldl -o "$out/fuzz_alloc"
"$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer -DBTM_FUZZ_MISUSE "$here/fuzz_alloc.cpp" "${objs[@]}" -lpthread -ldl \
  -o "$out/fuzz_misuse"
echo "built $out/fuzz_alloc $out/fuzz_misuse"
if [ "${FUZZ_BUILD_ONLY:-0}" != 1 ]; then
  "$out/fuzz_$target" -max_len=4096 "$@" "$out/corpus_$target" "$here/corpus_$target"
fi
