#!/usr/bin/env bash
# Builds the libFuzzer target for the configuration parser with clang and
# runs it.  Not part of ctest (which replays corpus/ with any compiler).
#   tests/config/fuzz/build.sh [OUT_DIR] [-- libFuzzer options...]
# e.g. tests/config/fuzz/build.sh /tmp/cfgfuzz -- -max_total_time=300
# New interesting inputs go to OUT_DIR/corpus; copy small ones into
# tests/config/fuzz/corpus/ (after `-merge=1`) to keep them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${1:-$repo/build-fuzz}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
cxx=${CLANGXX:-$(command -v clang++-14 || command -v clang++)}
mkdir -p "$out/corpus"
"$cxx" -std=c++20 -g -O1 -fno-exceptions -fno-rtti \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$repo/src" "$here/fuzz_parser.cpp" "$repo"/src/config/*.cpp \
  -o "$out/fuzz_parser"
echo "built $out/fuzz_parser"
if [ "${FUZZ_BUILD_ONLY:-0}" != 1 ]; then
  "$out/fuzz_parser" -max_len=8192 "$@" "$out/corpus" "$here/corpus"
fi
