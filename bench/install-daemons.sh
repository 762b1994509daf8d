#!/usr/bin/env bash
# Installs the idle daemons of the `daemons` benchmark (bench/daemons_probe.sh,
# issue 22): ten Debian services started under a namespaced
# /etc/ld.so.preload.  Bench-only: CI's scripts/install-deps.sh does not run
# this.  No service is started or enabled by the install (no init runs them
# here; policy-rc.d says no for the length of the install).
set -eu
pkgs=(cron rsyslog dbus-daemon openssh-server nginx-light postgresql redis-server memcached lighttpd dnsmasq-base)
if [ "$(id -u)" -ne 0 ]; then
  echo "install-daemons.sh: run as root (apt-get)" >&2
  exit 2
fi
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e $policy ]; then
  printf '#!/bin/sh\nexit 101\n' >$policy
  chmod 755 $policy
  made_policy=1
fi
trap '[ $made_policy -eq 1 ] && rm -f $policy' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
