#!/usr/bin/env bash
# The Debian packages end to end, as root:
#   1. packaging/build-deb.sh builds them (tests run in the build; lintian
#      must report no error or unexplained warning);
#   2. their contents match the expected lists;
#   3. in a private mount namespace whose /etc is a bind-mounted copy of the
#      real one (so the real /etc/ld.so.preload is never touched), dpkg -i
#      installs them and must leave /etc/ld.so.preload alone; the installed
#      `btmctl enable --system` adds the library next to an existing entry;
#      python3, perl, git, gcc, bash and apt-cache then run through
#      /etc/ld.so.preload and each must print btmalloc's statistics line for
#      its own PID; `btmctl enable UNIT` says systemd is not running;
#   4. dpkg --purge must take our line, and only ours, out of
#      /etc/ld.so.preload -- a symbolic link, written through -- and
#      programs must then run without complaint; with the timer enabled by
#      hand (its wants link), the purge must leave /etc exactly as it was
#      before the install (names, types, link targets, modes, checksums).
# Skipped (exit 77) without root, unshare or dpkg, or when btmalloc packages
# are already installed (they would be replaced).
#   deb_test.sh REPO_DIR OUT_DIR
set -u
packages=(btmalloc libbtmalloc-dev libbtmalloc1)

if [ "${1:-}" = --inner ]; then
  inner=1
  shift
else
  inner=0
fi
repo=$1
out=$2
status=0
fail() { echo "FAIL: $*"; status=1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

if [ $inner = 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "SKIPPED: needs root (dpkg -i, mount namespaces)"; exit 77; }
  for c in dpkg dpkg-deb apt-get unshare mount; do
    command -v $c >/dev/null || { echo "SKIPPED: $c is not installed"; exit 77; }
  done
  unshare -m --propagation private true 2>/dev/null ||
    { echo "SKIPPED: unshare -m is not permitted here"; exit 77; }
  for p in "${packages[@]}"; do
    if installed "$p"; then
      echo "SKIPPED: $p is already installed on this machine; the test would replace it"
      exit 77
    fi
  done

  start=$(date +%s)
  if ! BTM_DIST_DIR=$out bash "$repo/packaging/build-deb.sh"; then
    echo "FAIL: packaging/build-deb.sh (build or lintian)"
    exit 1
  fi
  echo "build-deb.sh took $(( $(date +%s) - start )) s"

  version=$(dpkg-parsechangelog -l "$repo/packaging/debian/changelog" -S Version)
  arch=$(dpkg --print-architecture)
  ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
  debs=()
  for p in libbtmalloc1 libbtmalloc-dev btmalloc; do debs+=("$out/${p}_${version}_${arch}.deb"); done
  [ -f "$out/btmalloc_${version}_${arch}.changes" ] || fail "no .changes file in $out"

  # Contents: every file matches an expected pattern and every pattern a file.
  compare() {
    local deb=$1 expected=$2 f p found files
    files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | grep -v '^$' |
            grep -v -E '^/usr(/share(/doc|/lintian(/overrides)?|/man(/man[0-9])?)?|/lib(/'"$ma"')?|/include|/bin)?$|^/etc$')
    while IFS= read -r f; do
      found=0
      while IFS= read -r p; do [ -n "$p" ] && [[ $f == $p ]] && found=1; done <<<"$expected"
      [ $found = 1 ] || fail "$(basename "$deb") holds unexpected $f"
    done <<<"$files"
    while IFS= read -r p; do
      [ -n "$p" ] || continue
      found=0
      while IFS= read -r f; do [[ $f == $p ]] && found=1; done <<<"$files"
      [ $found = 1 ] || fail "$(basename "$deb") lacks $p"
    done <<<"$expected"
  }
  compare "${debs[0]}" "
/usr/lib/$ma/libbtmalloc.so.1
/usr/lib/$ma/libbtmalloc.so.1.*.*
/usr/share/doc/libbtmalloc1
/usr/share/doc/libbtmalloc1/*
/usr/share/lintian/overrides/libbtmalloc1"
  compare "${debs[1]}" "
/usr/include/btmalloc.h
/usr/lib/$ma/libbtmalloc.so
/usr/lib/$ma/libbtmalloc.a
/usr/lib/$ma/pkgconfig
/usr/lib/$ma/pkgconfig/btmalloc.pc
/usr/lib/$ma/cmake
/usr/lib/$ma/cmake/btmalloc
/usr/lib/$ma/cmake/btmalloc/*.cmake
/usr/share/man/man3/btmalloc.3.gz
/usr/share/man/man3/btm_*.3.gz
/usr/share/doc/libbtmalloc-dev
/usr/share/doc/libbtmalloc-dev/*
/usr/share/lintian/overrides/libbtmalloc-dev"
  compare "${debs[2]}" "
/etc/btmalloc.conf
/etc/default
/etc/default/btm-pageout
/usr/bin/btmctl
/usr/bin/btm-pageout
/lib
/lib/systemd
/lib/systemd/system
/lib/systemd/system/btm-pageout.service
/lib/systemd/system/btm-pageout.timer
/lib/systemd/system/btm-metrics.service
/lib/systemd/system/btm-metrics.timer
/usr/share/btmalloc
/usr/share/btmalloc/btmalloc-preload.conf
/usr/share/man/man5/btmalloc.conf.5.gz
/usr/share/man/man7/btmalloc.7.gz
/usr/share/man/man8/btmctl.8.gz
/usr/share/man/man8/btm-pageout.8.gz
/usr/share/doc/btmalloc
/usr/share/doc/btmalloc/*
/usr/share/lintian/overrides/btmalloc"
  dpkg-deb -I "${debs[0]}" | grep -q '^ Multi-Arch: same' || fail "libbtmalloc1 is not Multi-Arch: same"
  # The file is named after the soname: libbtmalloc.so.1 -> libbtmalloc.so.1.x.y.
  real=$(dpkg-deb -c "${debs[0]}" | sed -n 's|.* \./usr/lib/'"$ma"'/libbtmalloc\.so\.1 -> ||p')
  [[ $real == libbtmalloc.so.1.*.* ]] || fail "libbtmalloc.so.1 points at '$real', not libbtmalloc.so.1.x.y"
  # Each man page .so link became a symbolic link to btmalloc.3.
  dpkg-deb -c "${debs[1]}" | grep -q '/man3/btm_malloc\.3\.gz -> btmalloc\.3\.gz$' ||
    fail "man3/btm_malloc.3.gz is not a link to btmalloc.3.gz: $(dpkg-deb -c "${debs[1]}" | grep man3)"
  # The timer's maintainer scripts (dh_installsystemd): stopped on removal,
  # its links dropped on purge.
  dpkg-deb --ctrl-tarfile "${debs[2]}" | tar -xOf - ./postrm 2>/dev/null | grep -q 'deb-systemd-helper purge' ||
    fail "btmalloc's postrm does not purge the timer's links"
  dpkg-deb --ctrl-tarfile "${debs[2]}" | tar -xOf - ./prerm 2>/dev/null | grep -q 'btm-pageout.timer' ||
    fail "btmalloc's prerm does not stop the timer"
  dpkg-deb --ctrl-tarfile "${debs[0]}" | tar -tf - | grep -q '^./symbols$' || fail "libbtmalloc1 has no symbols file"
  dpkg-deb --ctrl-tarfile "${debs[2]}" | tar -xOf - ./conffiles | grep -qx /etc/btmalloc.conf ||
    fail "/etc/btmalloc.conf is not a conffile"

  # Should anything below stop half-way, the packages must not stay.
  cleanup() {
    for p in "${packages[@]}"; do
      if installed "$p"; then dpkg --purge "${packages[@]}" >/dev/null 2>&1; break; fi
    done
  }
  trap cleanup EXIT
  unshare -m --propagation private bash "$0" --inner "$repo" "$out" "${debs[@]}" || status=1
  for p in "${packages[@]}"; do installed "$p" && fail "$p is still installed after the purge"; done
  [ $status -eq 0 ] && echo "ok: Debian packages"
  exit $status
fi

# ---------------------------------------------------------------- inside the namespace
shift 2
debs=("$@")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/btm-deb-test.XXXXXX")
chmod 755 "$tmp"
cp -a /etc "$tmp/etc"
mount --bind "$tmp/etc" /etc || { echo "FAIL: cannot bind-mount a copy of /etc"; exit 1; }
preload=/etc/ld.so.preload
export LC_ALL=C HOME=$tmp/home
mkdir -p "$HOME"
unset BTM_ENABLED BTM_CONF BTM_STATS_AT_EXIT LD_PRELOAD

# The site's preload file, reached through a symbolic link that every
# writer (btmctl, the prerm) must keep.
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
other=/usr/lib/$ma/libm.so.6
[ -e "$other" ] || other=/usr/lib/$ma/libc.so.6
rm -f "$preload"
mkdir -p /etc/site-preload
printf '# an entry of the site, kept\n%s\n' "$other" >/etc/site-preload/ld.so.preload
ln -s site-preload/ld.so.preload "$preload"
# /etc as it is before the install: the purge must bring it back exactly
# (ld.so.cache aside: ldconfig rebuilds it, with the same libraries).
snapshot() {
  (cd /etc && find . -path ./ld.so.cache -prune -o -printf '%p %y %m %u %g %l\n' | LC_ALL=C sort
   find . -path ./ld.so.cache -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
snapshot >"$tmp/etc.before"

before=$(cat "$preload" 2>/dev/null || echo '<none>')
dpkg -i "${debs[@]}" >"$tmp/dpkg-i.log" 2>&1 || { cat "$tmp/dpkg-i.log"; echo "FAIL: dpkg -i"; exit 1; }
[ "$(cat "$preload" 2>/dev/null || echo '<none>')" = "$before" ] || fail "installing changed $preload"
lib=$(dpkg -L libbtmalloc1 | grep '/libbtmalloc\.so\.1$')
[ -n "$lib" ] || { echo "FAIL: libbtmalloc1 ships no libbtmalloc.so.1"; exit 1; }
if command -v man >/dev/null; then
  page=$(man -w 3 btm_malloc 2>&1) && [ "$(basename "$(readlink -f "$page")")" = btmalloc.3.gz ] ||
    fail "man btm_malloc does not resolve to btmalloc(3): $page"
fi
# The administrator enables the timer by hand (systemd is not PID 1 here:
# systemctl edits the links, or we make the one it would).
systemctl enable btm-pageout.timer >"$tmp/systemctl.log" 2>&1 ||
  { mkdir -p /etc/systemd/system/timers.target.wants &&
    ln -s /lib/systemd/system/btm-pageout.timer /etc/systemd/system/timers.target.wants/; }
[ -L /etc/systemd/system/timers.target.wants/btm-pageout.timer ] ||
  fail "enabling the timer made no link: $(cat "$tmp/systemctl.log")"

# Work for git, prepared before the preload.
git init -q "$tmp/repo"
for i in 1 2 3; do
  echo "$i" >"$tmp/repo/f$i"
  git -C "$tmp/repo" add "f$i"
  git -C "$tmp/repo" -c user.name=t -c user.email=t@example.org commit -q -m "commit $i"
done
printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >"$tmp/hello.c"

# Enable through the installed btmctl, next to an entry that must stay.
if ! /usr/bin/btmctl enable --system >"$tmp/enable.out" 2>&1; then
  cat "$tmp/enable.out"
  echo "FAIL: btmctl enable --system"
  exit 1
fi
expected="# an entry of the site, kept
$other
$lib"
[ "$(cat "$preload")" = "$expected" ] || fail "after enable $preload holds: $(cat "$preload")"
/usr/bin/btmctl enable --system | grep -q 'already enabled' || fail "second enable was not a no-op"

# run NAME COMMAND...: runs it with the statistics at exit; its PID is the
# subshell's, which execs it.  check NAME PATTERN: exit 0, stdout matches
# PATTERN (unless empty), and its own statistics line is on stderr.
run() {
  local name=$1
  shift
  (
    cd "$tmp" || exit 126
    echo "$BASHPID" >"$tmp/$name.pid"
    exec env BTM_STATS_AT_EXIT=1 "$@"
  ) >"$tmp/$name.out" 2>"$tmp/$name.err"
  rc=$?
  pid=$(cat "$tmp/$name.pid")
}
check() {
  local name=$1 pattern=$2 why=""
  if [ "$rc" != 0 ]; then why="exit status $rc"
  elif [ -n "$pattern" ] && ! grep -qE -- "$pattern" "$tmp/$name.out"; then why="output lacks '$pattern': $(head -c 300 "$tmp/$name.out")"
  elif ! grep -qE "^btmalloc\[$pid\]: .*slow_mallocs=[1-9]" "$tmp/$name.err"; then
    why="no 'btmalloc[$pid]: ... slow_mallocs=N' line: it did not run on btmalloc"
  fi
  if [ -z "$why" ]; then
    echo "ok: $name ran on btmalloc through $preload"
  else
    fail "$name: $why; stderr: $(tail -n 5 "$tmp/$name.err")"
  fi
}
run python3 env PYTHONMALLOC=malloc /usr/bin/python3 -c \
  'import json; d = {str(i): [i, str(i) * 3] for i in range(50000)}; print(json.loads(json.dumps(d)) == d)'
check python3 '^True$'
run perl perl -e 'my %h; $h{$_} = "x" x ($_ % 64) for 1 .. 100000; print scalar(keys %h), "\n"'
check perl '^100000$'
run git git -C "$tmp/repo" log -p --format=%s
check git '^commit 3$'
run gcc gcc -O2 -c "$tmp/hello.c" -o "$tmp/hello.o"
check gcc ''
[ -s "$tmp/hello.o" ] || fail "gcc wrote no object file"
run bash bash -c 'declare -A h; for i in $(seq 1 5000); do h[$i]=x$i; done; echo ${#h[@]}'
check bash '^5000$'
run apt-cache apt-cache policy bash
check apt-cache '^bash:'

# status lists processes that map the library (btmctl itself, at least).
/usr/bin/btmctl status >"$tmp/status.out" 2>&1 || fail "btmctl status failed"
grep -q '^machine-wide: enabled' "$tmp/status.out" || fail "status: $(cat "$tmp/status.out")"
grep -qE '^[1-9][0-9]* process(es)? uses? btmalloc' "$tmp/status.out" || fail "status: $(cat "$tmp/status.out")"

# A service: systemd is not PID 1 here, and btmctl says so.
unit=$(cd /lib/systemd/system 2>/dev/null && ls systemd-journald.service 2>/dev/null)
if [ -n "$unit" ]; then
  /usr/bin/btmctl enable "$unit" --no-reload >"$tmp/unit.out" 2>&1 || fail "enable $unit: $(cat "$tmp/unit.out")"
  if [ "$(ps -p 1 -o comm=)" != systemd ]; then
    grep -q 'systemd is not running' "$tmp/unit.out" || fail "enable $unit did not say systemd is not running: $(cat "$tmp/unit.out")"
  fi
  grep -q "LD_PRELOAD=$lib" "/etc/systemd/system/$unit.d/50-btmalloc.conf" || fail "no drop-in for $unit"
  /usr/bin/btmctl disable "$unit" --no-reload >/dev/null 2>&1 || fail "disable $unit"
  [ -e "/etc/systemd/system/$unit.d" ] && fail "disable left /etc/systemd/system/$unit.d"
fi

# Purging takes our line, and only ours, out of the file.
dpkg --purge "${packages[@]}" >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "dpkg --purge"; }
grep -q "libbtmalloc1: removed $lib from $preload" "$tmp/purge.log" || fail "prerm said nothing: $(cat "$tmp/purge.log")"
grep -q libbtmalloc "$preload" && fail "after the purge $preload still names btmalloc: $(cat "$preload")"
[ "$(cat "$preload")" = "# an entry of the site, kept
$other" ] || fail "after the purge $preload holds: $(cat "$preload")"
[ -e /etc/btmalloc.conf ] && fail "the purge left /etc/btmalloc.conf"
[ -L "$preload" ] || fail "the purge replaced the symbolic link $preload"
snapshot >"$tmp/etc.after"
diff -u "$tmp/etc.before" "$tmp/etc.after" >"$tmp/etc.diff" ||
  fail "the purge left /etc changed: $(cat "$tmp/etc.diff")"
for cmd in "/bin/true" "/bin/sh -c true" "/usr/bin/python3 -c pass" "/usr/bin/perl -e 1"; do
  err=$($cmd 2>&1 >/dev/null) || fail "'$cmd' failed after the purge"
  [ -z "$err" ] || fail "'$cmd' complains after the purge: $err"
done
[ $status -eq 0 ] && echo "ok: purge removed our entry and kept the site's"
umount /etc
rm -rf "$tmp"
exit $status
