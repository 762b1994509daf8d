#!/usr/bin/env bash
# Plot the RSS time series of the burst benchmark and of the large-block
# benchmark (bench_large_reuse), one line per allocator, one panel per
# benchmark, into one PNG.
#
#   bench/plot_burst.sh OUT.png SERIES.tsv...
#   bench/plot_burst.sh OUT.png DIR          (every DIR/burst-*.tsv and DIR/large_reuse-*.tsv)
#
# A series file is what `bench_burst --series FILE` or `bench_large_reuse
# --series FILE` writes ("t_s rss_MiB live_MiB phase" lines); its name says
# which panel it belongs to (burst-ALLOC.tsv, large_reuse-ALLOC.tsv) and the
# legend name is ALLOC. The live bytes and the phase boundaries of a panel
# are taken from its first file (they are the same workload in every file)
# and drawn in grey.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
out=$1
shift
files=()
for arg in "$@"; do
  if [[ -d $arg ]]; then
    for f in "$arg"/burst-*.tsv "$arg"/large_reuse-*.tsv; do [[ -e $f ]] && files+=("$f"); done
  else
    files+=("$arg")
  fi
done
if [[ ${#files[@]} -eq 0 ]]; then
  echo "plot_burst.sh: no series files" >&2
  exit 1
fi
command -v gnuplot >/dev/null || { echo "plot_burst.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }

# panel PREFIX TITLE: the gnuplot commands of one panel, from the files whose
# name starts with PREFIX- (none: nothing).
panel() {
  local prefix=$1 title=$2 group=() f
  for f in "${files[@]}"; do
    [[ $(basename "$f") == "$prefix"-* ]] && group+=("$f")
  done
  [[ ${#group[@]} -eq 0 ]] && return
  echo "unset arrow; unset label"
  echo "set title \"$title\""
  # Phase boundaries of the first series: the time of the first sample of each
  # new phase; labels are staggered because the burst phases are short.
  awk '!/^#/ && $4 != last {
      if (last != "" && $4 != "done") {
        printf "set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 lc rgb \"#999999\"\n", $1, $1
        printf "set label \"%s\" at %s, graph %.2f left offset 0.3,0 font \",9\" tc rgb \"#555555\"\n", $4, $1, 0.97 - 0.05 * (n++ % 4)
      }
      last = $4
    }' "${group[0]}"
  local plot="" name style
  for f in "${group[@]}"; do
    name=$(basename "$f" .tsv)
    name=${name#"$prefix"-}
    # The same colour for an allocator in every plot; btmalloc drawn heavier.
    case $name in
      btmalloc) style="lw 3 lc rgb '#d62728'" ;;
      glibc) style="lw 2 lc rgb '#7f3fbf'" ;;
      jemalloc) style="lw 2 lc rgb '#2ca02c'" ;;
      mimalloc) style="lw 2 lc rgb '#ff7f0e'" ;;
      tcmalloc) style="lw 2 lc rgb '#1f77b4'" ;;
      *) style="lw 2" ;;
    esac
    plot+="${plot:+, }'$f' using 1:2 with lines $style title '$name'"
  done
  plot+=", '${group[0]}' using 1:3 with lines lw 2 dt 3 lc rgb '#000000' title 'live bytes'"
  echo "plot $plot"
}

burst=$(panel burst "burst workload: resident memory over time\n(400k objects of 16-1024 B grown and churned, random 90% freed, survivors replaced, then all freed)")
large=$(panel large_reuse "large blocks reused: resident memory over time\n(20 live buffers of 5-25 MiB, one replaced at random 2,000 times, value-initialised; then all freed, idle)")
panels=0
[[ -n $burst ]] && panels=$((panels + 1))
[[ -n $large ]] && panels=$((panels + 1))
if ((panels == 0)); then
  echo "plot_burst.sh: no file named burst-*.tsv or large_reuse-*.tsv" >&2
  exit 1
fi

gnuplot <<GP
set terminal pngcairo size 1100,$((600 * panels)) font ",11"
set output '$out'
set multiplot layout $panels,1
set xlabel "time since start (seconds)"
set ylabel "resident set size (MiB)"
set grid
set key outside right top noenhanced
set yrange [0:*]
$burst
$large
unset multiplot
GP
echo "wrote $out"
