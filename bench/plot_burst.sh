#!/usr/bin/env bash
# Plot the RSS time series of the burst benchmark, one line per allocator,
# into one PNG.
#
#   bench/plot_burst.sh OUT.png SERIES.tsv...
#   bench/plot_burst.sh OUT.png DIR          (every DIR/burst-*.tsv)
#
# A series file is what `bench_burst --series FILE` writes ("t_s rss_MiB
# live_MiB phase" lines); the legend name is the file name without "burst-" and
# ".tsv". The live bytes and the phase boundaries are taken from the first file
# (they are the same workload in every file) and drawn in grey.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
out=$1
shift
files=()
for arg in "$@"; do
  if [[ -d $arg ]]; then
    for f in "$arg"/burst-*.tsv; do [[ -e $f ]] && files+=("$f"); done
  else
    files+=("$arg")
  fi
done
if [[ ${#files[@]} -eq 0 ]]; then
  echo "plot_burst.sh: no series files" >&2
  exit 1
fi
command -v gnuplot >/dev/null || { echo "plot_burst.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }

# Phase boundaries of the first series: the time of the first sample of each
# new phase; labels are staggered because the burst phases are short.
marks=$(awk '!/^#/ && $4 != last {
    if (last != "" && $4 != "done") {
      printf "set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 lc rgb \"#999999\"\n", $1, $1
      printf "set label \"%s\" at %s, graph %.2f left offset 0.3,0 font \",9\" tc rgb \"#555555\"\n", $4, $1, 0.97 - 0.05 * (n++ % 4)
    }
    last = $4
  }' "${files[0]}")

plot=""
for f in "${files[@]}"; do
  name=$(basename "$f" .tsv)
  name=${name#burst-}
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
plot+=", '${files[0]}' using 1:3 with lines lw 2 dt 3 lc rgb '#000000' title 'live bytes'"

gnuplot <<GP
set terminal pngcairo size 1100,600 font ",11"
set output '$out'
set title "burst workload: resident memory over time\n(400k objects of 16-1024 B grown and churned, random 90% freed, survivors replaced, then all freed)"
set xlabel "time since start (seconds)"
set ylabel "resident set size (MiB)"
set grid
set key outside right top noenhanced
set yrange [0:*]
$marks
plot $plot
GP
echo "wrote $out"
