#!/usr/bin/env bash
# The idle-daemon set of issue 22: ten Debian services, each started in the
# foreground with a minimal configuration of its own under a machine-wide
# preload of LIB (or none, for glibc), in a private mount namespace whose
# /etc is an overlay (the real /etc/ld.so.preload is never written) and whose
# /run is a fresh tmpfs.  After they have settled, the Pss of each service's
# whole process tree (postgres and nginx run several) is read from
# /proc/PID/smaps_rollup.  Prints metric lines "name value unit":
#   d_<service>_pss    KB, the tree's Pss
#   daemons_sum_pss    KB, their sum
#   daemons_count      services measured
# With BTM_DAEMONS_ANATOMY set, each process's anonymous memory by cause
# (anon_anatomy.py) goes to stderr.
# Services that are not installed (bench/install-daemons.sh) are left out and
# named on stderr; one that is installed but does not start fails the probe.
#   daemons_probe.sh LIB|""   (as root: unshare -m, mounts, setpriv)
set -u
settle=${BTM_DAEMONS_SETTLE:-5}
here=$(cd "$(dirname "$0")" && pwd)
. "$(dirname "$0")/preload_ns.sh" "$@"
mount -t tmpfs tmpfs /run || exit 1
d=$tmp/d
mkdir -p "$d"
chmod 755 "$d"

# What needs setting up runs before the preload is in place.
pg=/usr/lib/postgresql/15/bin
if [[ -x $pg/postgres ]] && id postgres >/dev/null 2>&1; then
  install -d -o postgres -g postgres "$d/pg" "$d/pgsock"
  setpriv --reuid=postgres --regid=postgres --init-groups "$pg/initdb" -D "$d/pg" -A trust -U postgres \
    --no-sync >"$d/initdb.log" 2>&1 || { echo "daemons_probe: initdb failed" >&2; exit 1; }
fi
if [[ -x /usr/sbin/sshd ]]; then
  ssh-keygen -q -t ed25519 -N '' -f "$d/hostkey" || exit 1
  mkdir -p /run/sshd
fi
cat >"$d/rsyslog.conf" <<CONF
module(load="imuxsock" SysSock.Name="$d/devlog")
*.* $d/messages
CONF
cat >"$d/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/nginx.err;
events { worker_connections 64; }
http { access_log off; server { listen 127.0.0.1:18099; root $d; } }
CONF
cat >"$d/lighttpd.conf" <<CONF
server.document-root = "$d"
server.port = 18098
server.bind = "127.0.0.1"
server.errorlog = "$d/lighttpd.err"
CONF

[[ -n $lib ]] && echo "$lib" >/etc/ld.so.preload

declare -A pid
start() {  # start NAME BINARY ARGS...: runs it in the background if installed
  local name=$1
  shift
  if [[ ! -x $1 ]]; then
    echo "daemons_probe: $name not installed ($1)" >&2
    return
  fi
  "$@" >"$d/$name.out" 2>&1 </dev/null &
  pid[$name]=$!
}
start cron /usr/sbin/cron -f
start rsyslog /usr/sbin/rsyslogd -n -f "$d/rsyslog.conf" -i "$d/rsyslogd.pid"
start dbus /usr/bin/dbus-daemon --session --nofork --nopidfile --address="unix:path=$d/bus"
start sshd /usr/sbin/sshd -D -f /dev/null -h "$d/hostkey" -p 18022 -o ListenAddress=127.0.0.1 -o PidFile="$d/sshd.pid"
start nginx /usr/sbin/nginx -c "$d/nginx.conf" -p "$d"
if [[ -d $d/pg ]]; then
  start postgres /usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups "$pg/postgres" -D "$d/pg" -k "$d/pgsock" \
    -p 18432 -c listen_addresses=
else
  echo "daemons_probe: postgres not installed" >&2
fi
start redis /usr/bin/redis-server --port 18379 --bind 127.0.0.1 --save '' --appendonly no --daemonize no --dir "$d"
start memcached /usr/bin/memcached -u nobody -l 127.0.0.1 -p 18211 -U 0 -m 16
start lighttpd /usr/sbin/lighttpd -D -f "$d/lighttpd.conf"
start dnsmasq /usr/sbin/dnsmasq -k --conf-file=/dev/null --port=18053 --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --user=nobody --pid-file="$d/dnsmasq.pid"
sleep "$settle"

tree() {  # tree PID: PID and its descendants
  local p=$1 c
  echo "$p"
  for c in $(cat "/proc/$p/task/"*/children 2>/dev/null); do tree "$c"; done
}
failed=0 sum=0 count=0
for name in $(printf '%s\n' "${!pid[@]}" | sort); do
  p=${pid[$name]}
  if ! kill -0 "$p" 2>/dev/null; then
    echo "daemons_probe: $name exited early:" >&2
    tail -n 3 "$d/$name.out" >&2
    failed=1
    continue
  fi
  pss=0
  for q in $(tree "$p"); do
    v=$(awk '$1 == "Pss:" { print $2 }' "/proc/$q/smaps_rollup" 2>/dev/null)
    pss=$((pss + ${v:-0}))
    [[ -n ${BTM_DAEMONS_ANATOMY:-} ]] && /usr/bin/python3 "$here/anon_anatomy.py" "$q" "$lib" | sed "s/^/$name: /" >&2
  done
  echo "d_${name}_pss $pss KB"
  sum=$((sum + pss))
  count=$((count + 1))
done
echo "daemons_sum_pss $sum KB"
echo "daemons_count $count n"
for p in "${pid[@]}"; do
  for q in $(tree "$p"); do kill "$q" 2>/dev/null; done
done
wait 2>/dev/null
exit $failed
