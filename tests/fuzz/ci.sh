#!/usr/bin/env bash
# CI's short fuzzing run: builds the configuration parser's fuzzer and the
# allocator's two (tests/config/fuzz/build.sh, tests/fuzz/build.sh) with
# clang and runs each for BTM_FUZZ_SECONDS (default 60) from the committed
# corpora.  Needs clang with libFuzzer; skips (77) without it.
#   tests/fuzz/ci.sh OUT_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: ci.sh OUT_DIR}
secs=${BTM_FUZZ_SECONDS:-60}
case $secs in ''|*[!0-9]*) echo "BTM_FUZZ_SECONDS must be a number of seconds, not '$secs'" >&2; exit 2;; esac
cxx=${CLANGXX:-$(command -v clang++-14 || command -v clang++ || true)}
if [ -z "$cxx" ]; then echo "SKIPPED: no clang++ (apt-get install clang)"; exit 77; fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe/t.cpp"
if ! "$cxx" -fsanitize=fuzzer "$probe/t.cpp" -o "$probe/t" 2>/dev/null; then
  echo "SKIPPED: $cxx has no libFuzzer runtime (libclang-rt-dev)"; exit 77
fi
export CLANGXX=$cxx FUZZ_BUILD_ONLY=1
bash "$repo/tests/config/fuzz/build.sh" "$out/config" >/dev/null || exit 1
bash "$here/build.sh" "$out/alloc" >/dev/null || exit 1
fail=0
run() {  # name binary max_len corpus...
  local name=$1 bin=$2 len=$3
  shift 3
  if "$bin" -max_len="$len" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$out/$name-" "$@" \
       >"$out/$name.log" 2>&1; then
    echo "$name: $(grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "$out/$name.log" | tr '\n' ' ')"
    grep -E '^#[0-9]+ +DONE' "$out/$name.log" | tail -n 1
  else
    echo "FAIL: $name (artifacts and log in $out/$name*):"
    tail -n 30 "$out/$name.log"
    fail=1
  fi
}
mkdir -p "$out/config/new" "$out/alloc/new_alloc" "$out/alloc/new_misuse"
run config "$out/config/fuzz_parser" 8192 "$out/config/new" "$repo/tests/config/fuzz/corpus"
run alloc "$out/alloc/fuzz_alloc" 4096 "$out/alloc/new_alloc" "$here/corpus_alloc"
run misuse "$out/alloc/fuzz_misuse" 256 "$out/alloc/new_misuse" "$here/corpus_misuse"
exit $fail
