# Sourced by the probes of a machine-wide preload (pss_probe.sh,
# daemons_probe.sh) as `. preload_ns.sh "$@"`, their first argument LIB or "".
# Outside the namespace it runs the probe again in a private mount namespace
# and exits with its status.  Inside, `lib` and `tmp` (a scratch directory
# readable by every user) are set, /etc is an overlay (the real one is never
# written) without ld.so.preload, BTM_CONF is empty and LD_PRELOAD unset; the
# probe writes LIB into /etc/ld.so.preload when its programs should get it.
lib=$1
if [[ ${2:-} != --inner ]]; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/btm-probe.XXXXXX")
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/upper" "$tmp/work"
  unshare -m --propagation private bash "$0" "$lib" --inner "$tmp"
  exit $?
fi
tmp=$3
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$tmp/upper,workdir=$tmp/work" /etc || exit 1
rm -f /etc/ld.so.preload
export BTM_CONF=
unset LD_PRELOAD
