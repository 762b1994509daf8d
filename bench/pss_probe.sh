#!/usr/bin/env bash
# Per-process memory cost under a machine-wide preload (issue 22): each program
# runs in a private mount namespace whose /etc (an overlay, the real one is
# never written) has an /etc/ld.so.preload naming LIB, or none for glibc, as
# a machine-wide install would.  Prints metric lines "name value unit":
#   <p>_pss, <p>_anon   Pss and anonymous Pss (KB, /proc/PID/smaps_rollup) of a
#                       program asleep after its start: python3 -c (time.sleep),
#                       perl -e (sleep), sh -c 'sleep; :' (the shell, not its
#                       child), sleep, and an idle dbus-daemon --session
#   idle_sum_pss        the sum of those Pss figures (the "many idle
#                       processes" figure)
#   <p>_maxrss          peak RSS (KB, GNU time) of short runs: python3 -c pass,
#                       perl -e 1, ls -la /usr/bin, sh -c true
#   pss_probe.sh LIB|""   (as root: unshare -m and an overlay mount)
set -u
. "$(dirname "$0")/preload_ns.sh" "$@"
[[ -n $lib ]] && echo "$lib" >/etc/ld.so.preload

pss_of() {  # pss_of PID FIELD: the KB value of FIELD in smaps_rollup
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/smaps_rollup"
}

declare -A pid
/usr/bin/python3 -c 'import time; time.sleep(30)' & pid[py_sleep]=$!
/usr/bin/perl -e 'sleep 30' & pid[perl_sleep]=$!
/bin/sh -c 'sleep 30; :' & pid[sh_sleep]=$!
/usr/bin/sleep 30 & pid[sleep]=$!
if [[ -x /usr/bin/dbus-daemon ]]; then
  /usr/bin/dbus-daemon --session --nofork --nopidfile --address="unix:path=$tmp/bus" 2>/dev/null &
  pid[dbus_idle]=$!
fi
sleep 2
sum=0
for name in py_sleep perl_sleep sh_sleep sleep dbus_idle; do
  p=${pid[$name]:-}
  [[ -n $p ]] || continue
  pss=$(pss_of "$p" Pss) anon=$(pss_of "$p" Pss_Anon)
  echo "${name}_pss $pss KB"
  echo "${name}_anon $anon KB"
  sum=$((sum + pss))
done
echo "idle_sum_pss $sum KB"
kill "${pid[@]}" 2>/dev/null
wait 2>/dev/null

maxrss() {  # maxrss NAME cmd...: median of 5 runs
  local name=$1 v=()
  shift
  for i in 1 2 3 4 5; do v+=("$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1)"); done
  echo "${name}_maxrss $(printf '%s\n' "${v[@]}" | sort -n | sed -n 3p) KB"
}
maxrss py_pass /usr/bin/python3 -c pass
maxrss perl_1 /usr/bin/perl -e 1
maxrss ls_la /usr/bin/ls -la /usr/bin
maxrss sh_true /bin/sh -c true
