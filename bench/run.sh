#!/usr/bin/env bash
# Run the btmalloc benchmarks under glibc, jemalloc, mimalloc, tcmalloc and
# btmalloc, and write a markdown report of medians and ratios to the best peer.
#
# usage: bench/run.sh [options]
#   -b, --bin DIR        directory with the bench_* programs
#                        (default: build-bench/bench, then build/bench, in the repo)
#   -l, --btmalloc PATH  libbtmalloc.so to preload (default: $BTMALLOC_LIB, then
#                        build/libbtmalloc.so next to the bench build, then the repo's build/)
#   -r, --rounds N       rounds; in each round every benchmark runs once under every
#                        allocator, the allocators alternating (default 5, quick 2)
#   -q, --quick          shorter runs and 2 rounds (a few minutes): to check the harness
#   -B, --bench LIST     benchmarks to run, comma-separated (default: all of
#                        churn,sites,local,prodcons,scratch,mtstress,latency,scatter16k,
#                        burst,large_reuse,startup,hotpath,python,gcc,pss,daemons; pss:
#                        per-process memory under a namespaced /etc/ld.so.preload, needs
#                        root; daemons: ten idle Debian services, which
#                        bench/install-daemons.sh installs); startup also runs with two empty
#                        libraries built here with cc and preloaded (not allocators):
#                        emptydso as cc links any library, emptydso_nocrt without
#                        the C start files (-nostartfiles), the least that loading
#                        one more library can cost
#   -a, --alloc LIST     allocators, comma-separated (default: glibc,jemalloc,mimalloc,
#                        tcmalloc,btmalloc)
#   -o, --out DIR        output directory (default: /tmp/btm-bench-DATE)
#   -t, --timeout SEC    kill a single benchmark run after SEC seconds (default 300)
#   -n, --nice N         run the benchmarks at nice level N (e.g. -10, as root) so that
#                        other work on a shared machine disturbs them less (default: as is)
#   -h, --help
#
# Writes DIR/results.md (also printed on stdout), DIR/raw.tsv (every value of
# every round), DIR/logs/ (each run's output), DIR/burst.png and the RSS series of
# burst and large_reuse.
# Peers are the Debian packages' libraries; an allocator whose library is missing,
# or that fails a start-up check, is skipped with a note. A run that fails or
# times out is noted and the rest goes on. Nothing is built here but the empty
# libraries: build the bench programs first (bench/README.md).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cmdline=$(printf '%q ' "$0" "$@")

bin=${BTM_BENCH_BIN:-}
btm_lib=${BTMALLOC_LIB:-}
rounds=""
quick=0
benches="churn,sites,local,prodcons,scratch,mtstress,latency,scatter16k,burst,large_reuse,startup,hotpath,python,gcc,pss,daemons"
allocs="glibc,jemalloc,mimalloc,tcmalloc,btmalloc"
out=""
run_timeout=300
nice_level=""

# The comment block at the top, up to the first line that is not a comment.
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }

while [[ $# -gt 0 ]]; do
  case $1 in
    -b | --bin) bin=$2; shift 2 ;;
    -l | --btmalloc) btm_lib=$2; shift 2 ;;
    -r | --rounds) rounds=$2; shift 2 ;;
    -q | --quick) quick=1; shift ;;
    -B | --bench) benches=$2; shift 2 ;;
    -a | --alloc) allocs=$2; shift 2 ;;
    -o | --out) out=$2; shift 2 ;;
    -t | --timeout) run_timeout=$2; shift 2 ;;
    -n | --nice) nice_level=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
benches=${benches//,/ }
allocs=${allocs//,/ }
[[ -n $rounds ]] || rounds=$((quick ? 2 : 5))

for b in $benches; do
  case $b in
    churn | sites | local | prodcons | scratch | mtstress | latency | scatter16k | burst | large_reuse | startup | hotpath \
      | python | gcc | pss | daemons) ;;
    *) echo "run.sh: unknown benchmark '$b'" >&2; exit 2 ;;
  esac
done
for a in $allocs; do
  case $a in
    glibc | jemalloc | mimalloc | tcmalloc | btmalloc) ;;
    *) echo "run.sh: unknown allocator '$a'" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --rounds wants a positive number" >&2; exit 2; }
[[ -z $nice_level || $nice_level =~ ^-?[0-9]+$ ]] || { echo "run.sh: --nice wants a number" >&2; exit 2; }
# Prefix for every timed command.
prio=()
[[ -n $nice_level ]] && prio=(nice -n "$nice_level")

# ---------------------------------------------------------------- locate things
if [[ -z $bin ]]; then
  for d in "$repo/build-bench/bench" "$repo/build/bench"; do
    [[ -x $d/bench_churn ]] && { bin=$d; break; }
  done
fi
[[ -n $bin && ! -x $bin/bench_churn && -x $bin/bench/bench_churn ]] && bin=$bin/bench
if [[ -z $bin || ! -x $bin/bench_churn ]]; then
  echo "run.sh: bench programs not found (give --bin DIR); build them with" >&2
  echo "  cmake -S $repo -B $repo/build-bench -DCMAKE_BUILD_TYPE=Release -DBTM_BUILD_BENCH=ON && cmake --build $repo/build-bench -j" >&2
  exit 1
fi
bin=$(cd "$bin" && pwd)
if [[ -z $btm_lib ]]; then
  for f in "$(dirname "$bin")/libbtmalloc.so" "$repo/build/libbtmalloc.so"; do
    [[ -e $f ]] && { btm_lib=$f; break; }
  done
fi
[[ -n $btm_lib && -e $btm_lib ]] && btm_lib=$(cd "$(dirname "$btm_lib")" && pwd)/$(basename "$btm_lib")

out=${out:-/tmp/btm-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs" "$out/series" "$out/work"
out=$(cd "$out" && pwd)
# Measure a snapshot: a library rebuilt in place during the run would mix two
# versions in one table.
if [[ -n $btm_lib && -e $btm_lib ]]; then
  btm_origin=$btm_lib
  cp -L "$btm_lib" "$out/work/libbtmalloc.so" && btm_lib=$out/work/libbtmalloc.so
  # The copy's pages are dropped from the page cache (written back first):
  # they come back through readahead, as for a library read from disk.  A
  # file just written costs a small program +64 KB of the library's code Rss
  # until then (Linux 6.18; docs/DESIGN.md §5).
  sync "$btm_lib" && dd if="$btm_lib" iflag=nocache count=0 status=none
fi

multiarch=/usr/lib/x86_64-linux-gnu
declare -A lib=(
  [glibc]=""
  [jemalloc]=$multiarch/libjemalloc.so.2
  [mimalloc]=$multiarch/libmimalloc.so.2
  [tcmalloc]=$multiarch/libtcmalloc_minimal.so.4
  [btmalloc]=$btm_lib
)
btm_origin=${btm_origin:-$btm_lib}
# References: preloaded like an allocator but not one; reported in their own
# columns, never peers, in the startup benchmark only.  Libraries with nothing
# in them, built with the system's cc: what loading one more object costs a
# process start (ld.so opening, mapping and relocating it), whatever is in it.
# emptydso is linked as cc links any library, with the C start files
# (crtbeginS.o and friends: weak symbols to look up, _init/_fini);
# emptydso_nocrt without them, as libbtmalloc.so is: the floor.
refs=()
declare -A ref_flags=([emptydso]="" [emptydso_nocrt]="-nostartfiles")
if [[ " $benches " == *" startup "* ]]; then
  echo 'int btm_bench_emptydso;' >"$out/work/emptydso.c"
  for ref in emptydso emptydso_nocrt; do
    # shellcheck disable=SC2086 # ref_flags holds zero or more flags
    if ${CC:-cc} -shared -fPIC -O2 ${ref_flags[$ref]} -o "$out/work/lib$ref.so" "$out/work/emptydso.c" \
      2>"$out/work/$ref.err"; then
      lib[$ref]=$out/work/lib$ref.so
      refs+=("$ref")
    fi
  done
fi

raw=$out/raw.tsv
notes=$out/notes.txt
: >"$notes"
printf 'round\talloc\tbench\tmetric\tvalue\tunit\n' >"$raw"

note() { echo "$*" >>"$notes"; echo "run.sh: $*" >&2; }
progress() { echo "[$(date +%H:%M:%S)] $*" >&2; }
if [[ " $benches " == *" startup "* && ${#refs[@]} -lt 2 ]]; then
  note "could not build the empty libraries (${CC:-cc}, see work/emptydso*.err): startup has ${refs[*]:-no reference}"
fi

# ---------------------------------------------------------------- parameters
if ((quick)); then
  t_churn=0.1 t_local=0.2 t_pc=0.2 lat_ops=1000000 scatter_cycles=3
  scratch_reps=50000 mt_ops=300000
  burst_args=(--settle-s 1 --drain-wait-s 0.5)
  large_reps=300 large_idle=2
  true_n=200 pipe_n=10 py_scale=0.4 gcc_functions=80
  hot_n1=100000 hot_n2=200000
else
  t_churn=0.5 t_local=1 t_pc=1 lat_ops=4000000 scatter_cycles=8
  scratch_reps=200000 mt_ops=1000000
  burst_args=(--settle-s 3 --drain-wait-s 1)
  large_reps=2000 large_idle=6
  true_n=1000 pipe_n=100 py_scale=1 gcc_functions=200
  hot_n1=200000 hot_n2=400000
fi

# Twenty commands, the shape of a shell script's pipeline; every process in it
# pays the allocator's start-up.
pipeline="seq 1 3000 | sed 's/\$/ item/' | grep -v 7 | sort -r | sed -n 1,2000p | tr a-z A-Z \
| awk '{print \$2, \$1}' | sort -k2 -n | uniq | cut -d' ' -f2 | rev | sort | tail -n 1500 \
| paste -sd' ' | tr ' ' '\n' | grep -c . | xargs echo total | wc -c | cat | cat"

# ---------------------------------------------------------------- runners
# Metric lines ("name value unit") of a log, appended to raw.tsv.
record() {
  local round=$1 alloc=$2 bench=$3 log=$4
  awk -v r="$round" -v a="$alloc" -v b="$bench" \
    '!/^#/ && NF == 3 { printf "%s\t%s\t%s\t%s\t%s\t%s\n", r, a, b, $1, $2, $3 }' "$log" >>"$raw"
}

# run_preloaded ROUND ALLOC BENCH TAG cmd...: the program itself runs with the
# allocator preloaded; checks that the preload took effect.
run_preloaded() {
  local round=$1 alloc=$2 bench=$3 tag=$4
  shift 4
  local log=$out/logs/$tag-$alloc-r$round
  local preload=(env -u LD_PRELOAD)
  [[ -n ${lib[$alloc]} ]] && preload=(env LD_PRELOAD="${lib[$alloc]}")
  timeout -k 5 "$run_timeout" "${prio[@]}" "${preload[@]}" "$@" >"$log.out" 2>"$log.err"
  local rc=$?
  if ((rc != 0)); then
    note "FAILED: $tag under $alloc, round $round: exit $rc$( ((rc == 124)) && echo " (timeout)"), see logs/$tag-$alloc-r$round.err"
    return 1
  fi
  local provider expect=${lib[$alloc]:-libc.so.6}
  provider=$(awk '$1 == "#" && $2 == "malloc_provider" { print $3 }' "$log.out")
  if [[ $provider != *"$(basename "$expect")"* ]]; then
    note "WRONG ALLOCATOR: $tag under $alloc, round $round: malloc came from '$provider'; result dropped"
    return 1
  fi
  record "$round" "$alloc" "$bench" "$log.out"
}

# run_wrapped ROUND ALLOC BENCH TAG runprog-args...: bench_runprog starts the
# command with the allocator preloaded in the child only.
run_wrapped() {
  local round=$1 alloc=$2 bench=$3 tag=$4
  shift 4
  local log=$out/logs/$tag-$alloc-r$round
  timeout -k 5 "$run_timeout" "${prio[@]}" env -u LD_PRELOAD "$bin/bench_runprog" --preload "${lib[$alloc]}" "$@" \
    >"$log.out" 2>"$log.err"
  local rc=$?
  if ((rc != 0)); then
    note "FAILED: $tag under $alloc, round $round: exit $rc, see logs/$tag-$alloc-r$round.err"
    return 1
  fi
  record "$round" "$alloc" "$bench" "$log.out"
}

# callgrind_ir ALLOC LOG cmd...: total instructions (Ir) executed by the command
# and, with --trace-children=yes in the command, by all its descendants.
callgrind_ir() {
  local alloc=$1 log=$2
  shift 2
  local preload=(env -u LD_PRELOAD)
  [[ -n ${lib[$alloc]} ]] && preload=(env LD_PRELOAD="${lib[$alloc]}")
  timeout -k 5 "$run_timeout" "${preload[@]}" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" \
    >/dev/null 2>"$log" || return 1
  awk '/Collected :/ { s += $NF; n++ } END { if (n) print s; else exit 1 }' "$log"
}

# ---------------------------------------------------------------- benchmarks
# bench_NAME ALLOC ROUND: one run of benchmark NAME under ALLOC.
bench_churn() {
  local size
  for size in 16 64 1024 16384; do
    run_preloaded "$2" "$1" churn "churn$size" "$bin/bench_churn" --size $size --time $t_churn
  done
  run_preloaded "$2" "$1" churn churn64new "$bin/bench_churn" --size 64 --api new --time $t_churn
  run_preloaded "$2" "$1" churn churnmixed "$bin/bench_churn" --size 0 --time $t_churn
}

bench_sites() {
  run_preloaded "$2" "$1" sites sites1 "$bin/bench_sites" --sites 1 --size 64 --time $t_churn
  run_preloaded "$2" "$1" sites sites256 "$bin/bench_sites" --sites 256 --size 64 --time $t_churn
  run_preloaded "$2" "$1" sites sites1024mixed "$bin/bench_sites" --sites 1024 --size 0 --time $t_churn
}

bench_local() {
  run_preloaded "$2" "$1" local local1 "$bin/bench_local" --threads 1 --time $t_local
  run_preloaded "$2" "$1" local local2 "$bin/bench_local" --threads 2 --time $t_local
}

bench_prodcons() {
  run_preloaded "$2" "$1" prodcons prodcons64 "$bin/bench_prodcons" --size 64 --time $t_pc
  run_preloaded "$2" "$1" prodcons prodconsmixed "$bin/bench_prodcons" --size 0 --time $t_pc
}

# One-byte objects, as the classic cache-scratch runs it: the touch loop is all
# of the time, so what counts is where the allocator puts the object.
bench_scratch() {
  local t
  for t in 1 2; do
    run_preloaded "$2" "$1" scratch "scratch$t" "$bin/bench_scratch" --threads $t --size 1 --iterations 1000 \
      --reps $scratch_reps
  done
}

bench_mtstress() {
  run_preloaded "$2" "$1" mtstress mtstress2 "$bin/bench_mtstress" --threads 2 --ops $mt_ops
}

bench_latency() {
  run_preloaded "$2" "$1" latency latency "$bin/bench_latency" --ops $lat_ops
}

bench_scatter16k() {
  run_preloaded "$2" "$1" scatter16k scatter16k "$bin/bench_scatter16k" --cycles $scatter_cycles
}

bench_burst() {
  run_preloaded "$2" "$1" burst burst "$bin/bench_burst" "${burst_args[@]}" \
    --series "$out/series/burst-$1-r$2.tsv"
}

bench_large_reuse() {
  run_preloaded "$2" "$1" large_reuse large_reuse "$bin/bench_large_reuse" --replacements $large_reps \
    --idle-s $large_idle --series "$out/series/large_reuse-$1-r$2.tsv"
  run_preloaded "$2" "$1" large_reuse large_calloc "$bin/bench_large_reuse" --replacements $large_reps \
    --idle-s 0 --api calloc
}

bench_startup() {
  run_wrapped "$2" "$1" startup true --name true --repeat $true_n -- /bin/true
  run_wrapped "$2" "$1" startup pipe20 --name pipe20 --repeat $pipe_n -- /bin/sh -c "$pipeline"
  # Instruction counts do not vary between runs: the first round is enough.
  [[ $2 == 1 ]] || return 0
  local ir
  if ir=$(callgrind_ir "$1" "$out/logs/true-callgrind-$1.err" --trace-children=no /bin/true); then
    printf '%s\t%s\tstartup\ttrue_Ir\t%s\tIr\n' "$2" "$1" "$ir" >>"$raw"
  else
    note "FAILED: callgrind of /bin/true under $1, see logs/true-callgrind-$1.err"
  fi
  if ir=$(callgrind_ir "$1" "$out/logs/pipe20-callgrind-$1.err" --trace-children=yes /bin/sh -c "$pipeline"); then
    printf '%s\t%s\tstartup\tpipe20_Ir\t%s\tIr\n' "$2" "$1" "$ir" >>"$raw"
  else
    note "FAILED: callgrind of the pipeline under $1, see logs/pipe20-callgrind-$1.err"
  fi
}

bench_hotpath() {
  [[ $2 == 1 ]] || return 0
  local batch ir1 ir2 per
  for batch in 1 100; do
    if ir1=$(callgrind_ir "$1" "$out/logs/hotpath$batch-n1-$1.err" "$bin/bench_hotpath" --n $hot_n1 --batch $batch) &&
      ir2=$(callgrind_ir "$1" "$out/logs/hotpath$batch-n2-$1.err" "$bin/bench_hotpath" --n $hot_n2 --batch $batch); then
      per=$(awk -v a="$ir1" -v b="$ir2" -v n1=$hot_n1 -v n2=$hot_n2 'BEGIN { printf "%.2f", (b - a) / (n2 - n1) }')
      local name=hotpath_64B_pair
      ((batch > 1)) && name=hotpath_64B_batch$batch
      printf '%s\t%s\thotpath\t%s\t%s\tIr/op\n' "$2" "$1" "$name" "$per" >>"$raw"
    else
      note "FAILED: callgrind of bench_hotpath under $1, see logs/hotpath$batch-*-$1.err"
    fi
  done
}

bench_python() {
  PYTHONMALLOC=malloc run_wrapped "$2" "$1" python python --name python -- \
    /usr/bin/python3 "$here/workloads/pyalloc.py" $py_scale
}

# Probes of a machine-wide preload (issue 22): each writes LIB into
# /etc/ld.so.preload in a private mount namespace (bench/preload_ns.sh).
# pss: per-process memory of small programs; daemons: ten idle Debian services.
run_probe() {  # run_probe BENCH ALLOC ROUND
  local log=$out/logs/$1-$2-r$3
  if ! timeout -k 5 "$run_timeout" "${prio[@]}" "$here/$1_probe.sh" "${lib[$2]}" >"$log.out" 2>"$log.err"; then
    note "FAILED: $1 under $2, round $3, see logs/$1-$2-r$3.err (needs root; daemons: bench/install-daemons.sh)"
    return 1
  fi
  record "$3" "$2" "$1" "$log.out"
}
bench_pss() { run_probe pss "$1" "$2"; }
bench_daemons() { run_probe daemons "$1" "$2"; }

bench_gcc() {
  run_wrapped "$2" "$1" gcc gcc --name gcc -- gcc -O2 -c "$out/work/big.c" -o "$out/work/big-$1.o"
}

# ---------------------------------------------------------------- checks
if [[ " $benches " == *" gcc "* ]]; then
  /usr/bin/python3 "$here/workloads/gen_c.py" $gcc_functions >"$out/work/big.c" || exit 1
fi
if [[ " $benches " == *" startup "* || " $benches " == *" hotpath "* ]] && ! command -v valgrind >/dev/null; then
  note "valgrind not found: instruction counts skipped"
fi

active=()
for a in $allocs; do
  if [[ -n ${lib[$a]} && ! -e ${lib[$a]} ]] || [[ $a == btmalloc && -z ${lib[$a]} ]]; then
    note "SKIPPED $a: library ${lib[$a]:-(none found; give --btmalloc or BTMALLOC_LIB)} not found"
    continue
  fi
  if ! run_preloaded 0 "$a" check check "$bin/bench_churn" --size 64 --time 0.01; then
    note "SKIPPED $a: start-up check failed (see logs/check-$a-r0.*)"
    continue
  fi
  active+=("$a")
done
# The start-up check's numbers are not results.
awk -F'\t' '$1 != "0"' "$raw" >"$raw.tmp" && mv "$raw.tmp" "$raw"
if [[ ${#active[@]} -eq 0 ]]; then
  echo "run.sh: no allocator left to run" >&2
  exit 1
fi

# ---------------------------------------------------------------- machine
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "command: $cmdline"
  echo "host: nproc $(nproc), kernel $(uname -r), CPU $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), THP $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
  echo "load before run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "repo: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD -- 2>/dev/null || echo ' (uncommitted changes)')"
  echo "bench programs: $bin"
  for a in "${active[@]}"; do
    if [[ -n ${lib[$a]} ]]; then
      origin=${lib[$a]}
      [[ $a == btmalloc ]] && origin=$btm_origin
      echo "$a: $origin ($(stat -L -c '%s bytes, %y' "$origin" | cut -d. -f1))"
    fi
  done
  for a in "${refs[@]}"; do
    echo "$a: ${lib[$a]} ($(stat -L -c '%s bytes' "${lib[$a]}"): ${CC:-cc} -shared -fPIC -O2${ref_flags[$a]:+ ${ref_flags[$a]}} of 'int btm_bench_emptydso;', $(${CC:-cc} --version | head -n 1))"
  done
  echo "packages: $(dpkg-query -W -f '${Package} ${Version}; ' libc6 libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 2>/dev/null)"
  echo "rounds: $rounds$( ((quick)) && echo ' (quick mode)')${nice_level:+, nice $nice_level}"
} >"$out/machine.txt"

# ---------------------------------------------------------------- run
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 1.0) }'; then
  note "the machine was busy when the run started (load average $load1): expect noise, prefer the CPU-time and instruction-count rows"
fi
progress "output in $out; allocators: ${active[*]}; benchmarks: $benches; $rounds rounds"
for ((r = 1; r <= rounds; r++)); do
  # Rotate the allocator order each round so none always runs first or last.
  order=()
  n=${#active[@]}
  for ((i = 0; i < n; i++)); do order+=("${active[$(((i + r - 1) % n))]}"); done
  # startup rotates the references in with the allocators.
  with_refs=("${active[@]}" "${refs[@]}")
  order_refs=()
  n=${#with_refs[@]}
  for ((i = 0; i < n; i++)); do order_refs+=("${with_refs[$(((i + r - 1) % n))]}"); done
  for b in $benches; do
    list=("${order[@]}")
    [[ $b == startup ]] && list=("${order_refs[@]}")
    for a in "${list[@]}"; do
      progress "round $r/$rounds  $b  $a"
      "bench_$b" "$a" "$r"
    done
  done
done

# ---------------------------------------------------------------- report
echo "load after run: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
if [[ " $benches " == *" burst "* || " $benches " == *" large_reuse "* ]]; then
  mkdir -p "$out/plot"
  for a in "${active[@]}"; do
    for kind in burst large_reuse; do
      f=$out/series/$kind-$a-r$rounds.tsv
      [[ -s $f ]] && cp "$f" "$out/plot/$kind-$a.tsv"
    done
  done
  if ls "$out"/plot/*.tsv >/dev/null 2>&1; then
    "$here/plot_burst.sh" "$out/burst.png" "$out/plot" >/dev/null || note "burst plot failed"
  fi
fi
report_args=(--raw "$raw" --machine "$out/machine.txt" --notes "$notes" --allocs "${active[*]}" --refs "${refs[*]}")
((quick)) && report_args+=(--quick)
[[ -e $out/burst.png ]] && report_args+=(--plot "$out/burst.png")
/usr/bin/python3 "$here/report.py" "${report_args[@]}" >"$out/results.md"
cat "$out/results.md"
progress "wrote $out/results.md"
