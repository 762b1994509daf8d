#!/usr/bin/env bash
# btmctl metrics with the test service running: the text passes `promtool
# check metrics`, names the service's process and its top call sites;
# --textfile writes DIR/btmalloc.prom whole (no temporary left), a
# directory it cannot write is an error, bad arguments a usage error.
# Usage: metrics_test.sh BTMCTL LIBBTMALLOC VICTIM
set -u
btmctl=$1 lib=$2 victim=$3
source "$(dirname "$0")/../pageout_tool/lib.sh"
promtool=$(command -v promtool) || skip "promtool not installed (Debian: prometheus)"
export BTM_PARTITION_AFTER=0 BTM_PARTITION_MODE=intern

for bad in "--top" "--top x" "--textfile" "--bogus"; do
    # shellcheck disable=SC2086
    "$btmctl" metrics $bad > /dev/null 2> "$tmp/usage.err"
    [ $? = 2 ] || fail "'btmctl metrics $bad' is not a usage error: $(cat "$tmp/usage.err")"
done

start_bg v env LD_PRELOAD="$lib" "$victim" "$tmp/v.ready" all
sleep 1
# Other tests' btmalloc processes may run at once, in the same unit ("-"):
# a top large enough that theirs cannot push the service's sites out.
"$btmctl" metrics --top 200 > "$tmp/m.prom" || fail "btmctl metrics exited with $?"
"$promtool" check metrics < "$tmp/m.prom" > "$tmp/lint.out" 2>&1 || { cat "$tmp/m.prom" "$tmp/lint.out"; fail "promtool"; }
[ -s "$tmp/lint.out" ] && { cat "$tmp/lint.out"; fail "promtool lint findings"; }
for fam in live_bytes committed_bytes resident_bytes swapped_bytes pageouts_total foreign_frees_total \
           invalid_frees_total; do
    grep -q "^btmalloc_$fam{pid=\"$pid_v\",comm=\"$(basename "$victim" | cut -c1-15)\",unit=\"[^\"]*\"} [0-9]\+$" "$tmp/m.prom" ||
        { cat "$tmp/m.prom"; fail "no btmalloc_$fam for $pid_v"; }
done
awk -v p="$pid_v" '$1 ~ "^btmalloc_live_bytes[{]pid=\"" p "\"" { exit !($2 > 600000) }' "$tmp/m.prom" ||
    fail "live bytes below the stable set's"
grep -q '^btmalloc_site_live_bytes{unit="[^"]*",site="keep_stable+0x[0-9a-f]* (heap_victim_split)",module="heap_victim_split"} [0-9]\+$' \
    "$tmp/m.prom" || { cat "$tmp/m.prom"; fail "no site metric for keep_stable"; }

mkdir "$tmp/tf"
"$btmctl" metrics --textfile "$tmp/tf" || fail "--textfile exited with $?"
[ "$(ls -A "$tmp/tf")" = btmalloc.prom ] || fail "--textfile left: $(ls -A "$tmp/tf")"
"$promtool" check metrics < "$tmp/tf/btmalloc.prom" > /dev/null 2>&1 || fail "promtool on the textfile"
"$btmctl" metrics --textfile "$tmp/missing" 2> "$tmp/tf.err"
[ $? = 1 ] && grep -q "cannot write $tmp/missing/btmalloc.prom" "$tmp/tf.err" || fail "unwritable dir: $(cat "$tmp/tf.err")"
echo PASS
