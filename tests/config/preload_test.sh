#!/usr/bin/env bash
# The configuration through the real allocator:
#   preload_test.sh files|disabled LIBBTMALLOC WHERE WHERE_LINKED EARLY
# WHERE prints which allocator served its small blocks (where.c);
# WHERE_LINKED is the same program linked against LIBBTMALLOC, for the
# set-user-ID case (LD_PRELOAD does not reach set-user-ID programs).
# EARLY is a library whose initialiser allocates (early_malloc.c).
#   files     hostile BTM_CONF files and set-user-ID; skipped (77) while the
#             library does not print its configuration with BTM_VERBOSE=1
#   disabled  enabled = off; skipped (77) while the library does not print
#             the line below with BTM_VERBOSE=1 when enabled = off
set -u
mode=$1 lib=$2 where=$3 linked=$4 early=$5
disabled_line="btmalloc: enabled = off: forwarding every call to glibc's allocator"
tmp=$(mktemp -d /tmp/btm-preload-XXXXXX)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
export BTM_CONF=  # only the files named here, never /etc/btmalloc.conf
unset BTM_VERBOSE BTM_ENABLED

if ! BTM_VERBOSE=1 LD_PRELOAD=$lib "$where" 2>&1 | grep -q '^btmalloc: enabled = '; then
  echo "SKIP: $lib does not print its configuration with BTM_VERBOSE=1 yet"
  exit 77
fi
if [ "$mode" = disabled ] &&
   ! BTM_ENABLED=0 BTM_VERBOSE=1 LD_PRELOAD=$lib "$where" 2>&1 | grep -qF "$disabled_line"; then
  echo "SKIP: $lib does not announce enabled = off yet (\"$disabled_line\")"
  exit 77
fi

status=0
fail() { echo "FAIL: $*"; status=1; }
expect() {  # expect NAME WANTED_STDOUT WANTED_STDERR_SUBSTRING -- command...
  local name=$1 want=$2 want_err=$3; shift 4
  local out err rc
  out=$("$@" 2>"$tmp/err"); rc=$?
  err=$(cat "$tmp/err")
  if [ $rc -ne 0 ]; then fail "$name: exit $rc: $err"; return; fi
  [ "$out" = "$want" ] || fail "$name: printed '$out', wanted '$want'"
  if [ -n "$want_err" ]; then
    grep -qF -- "$want_err" "$tmp/err" || fail "$name: stderr lacks '$want_err': $err"
  fi
  echo "ok: $name"
}

expect "glibc alone" glibc "" -- "$where"
expect "btmalloc preloaded" btmalloc "" -- env LD_PRELOAD="$lib" "$where"

if [ "$mode" = disabled ]; then
  # enabled = off: every allocation goes to glibc, decided before the first.
  printf '[program config_where]\nenabled = off\n' >"$tmp/off.conf"
  expect "enabled = off for this program" glibc "" -- env BTM_CONF="$tmp/off.conf" LD_PRELOAD="$lib" "$where"
  printf '[program someone_else]\nenabled = off\n' >"$tmp/other.conf"
  expect "enabled = off for another program" btmalloc "" -- env BTM_CONF="$tmp/other.conf" LD_PRELOAD="$lib" "$where"
  expect "BTM_ENABLED=0" glibc "" -- env BTM_ENABLED=0 LD_PRELOAD="$lib" "$where"
  expect "enabled = off, verbose" glibc "$disabled_line" -- \
    env BTM_VERBOSE=1 BTM_CONF="$tmp/off.conf" LD_PRELOAD="$lib" "$where"
  for prog in /bin/ls /usr/bin/python3 /usr/bin/perl; do
    [ -x "$prog" ] || continue
    case $prog in
      */ls) args=(/) ;;
      */python3) args=(-c 'print(sum(range(10)))') ;;
      */perl) args=(-e 'print 1+1, "\n"') ;;
    esac
    BTM_ENABLED=0 LD_PRELOAD="$lib" "$prog" "${args[@]}" >/dev/null 2>"$tmp/err" ||
      fail "$prog with enabled = off: $(cat "$tmp/err")"
  done

else
  # Hostile files: the program starts, runs on btmalloc, and says why.
  head -c 60000 /dev/urandom >"$tmp/garbage.conf"
  expect "garbage" btmalloc "btmalloc: $tmp/garbage.conf:" -- env BTM_CONF="$tmp/garbage.conf" LD_PRELOAD="$lib" "$where"
  head -c $((10 << 20)) /dev/zero | tr '\0' 'a' >"$tmp/huge.conf"
  expect "10 MB" btmalloc "btmalloc: $tmp/huge.conf: larger than 65536 bytes; ignored" -- \
    env BTM_CONF="$tmp/huge.conf" LD_PRELOAD="$lib" "$where"
  expect "directory" btmalloc "btmalloc: $tmp: a directory, not a regular file; ignored" -- \
    env BTM_CONF="$tmp" LD_PRELOAD="$lib" "$where"
  mkfifo "$tmp/fifo.conf"
  expect "FIFO" btmalloc "btmalloc: $tmp/fifo.conf: a FIFO, not a regular file; ignored" -- \
    timeout 10 env BTM_CONF="$tmp/fifo.conf" LD_PRELOAD="$lib" "$where"
  printf 'partitions = 8\n' >"$tmp/secret.conf"
  chmod 600 "$tmp/secret.conf"
  if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    asnobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
    chmod 000 "$tmp/secret.conf"; asnobody=()
fi
expect "unreadable" btmalloc "btmalloc: $tmp/secret.conf: cannot open: permission denied" -- \
  "${asnobody[@]}" env BTM_CONF="$tmp/secret.conf" LD_PRELOAD="$lib" "$where"
printf 'partitions = 8\nbogus = 1\n' >"$tmp/bad.conf"
expect "bad line" btmalloc "btmalloc: $tmp/bad.conf:2: unknown key 'bogus'" -- \
  env BTM_CONF="$tmp/bad.conf" LD_PRELOAD="$lib" "$where"

# The environment reaches btmalloc through its initialiser's arguments; a
# malloc from a library initialised before it (the second order: ld.so runs
# the later preload's initialiser first) must find the knobs all the same.
# A small one waits in the boot arena for that initialiser (no dlsym); 1 MB
# of them is more than that and makes init look `environ` up with dlsym.
for order in "$early $lib" "$lib $early"; do
  for bytes in 100 1000000; do
    expect "BTM_PARTITIONS, $bytes bytes allocated earlier, LD_PRELOAD=$(basename ${order% *}) first" btmalloc \
      "btmalloc: partitions = 8 (environment)" -- \
      env BTM_TEST_EARLY_BYTES=$bytes BTM_VERBOSE=1 BTM_PARTITIONS=8 LD_PRELOAD="$order" "$where"
  done
done
dlsym_bound() {  # does btmalloc bind dlsym in this run?
  env LD_DEBUG=bindings "$@" 2>&1 >/dev/null | grep -q "binding file [^ ]*btmalloc[^ ]* .*symbol \`dlsym'"
}
if dlsym_bound env BTM_TEST_EARLY_BYTES=100 LD_PRELOAD="$lib $early" "$where"; then
  fail "a small allocation before btmalloc's initialiser made init call dlsym"
else
  echo "ok: a small allocation before btmalloc's initialiser waits for it (no dlsym)"
fi
if ! dlsym_bound env BTM_TEST_EARLY_BYTES=1000000 LD_PRELOAD="$lib $early" "$where"; then
  fail "1 MB allocated before btmalloc's initialiser, and init did not look environ up (the test no longer reaches the fallback)"
fi

# /etc/btmalloc.conf writable by others, or owned by nobody, is ignored by a
# root process too, with one line.  /etc is a copy in a private mount
# namespace, so the real one is never touched.
if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then
  untrusted() {  # untrusted OWNER MODE: stderr of `where` run as root
    unshare -m --propagation private bash -c '
      cp -a /etc "$1/etc" && mount --bind "$1/etc" /etc || exit 99
      rm -rf /etc/btmalloc.conf /etc/btmalloc.conf.d
      printf "verbose = on\n" >/etc/btmalloc.conf
      chown "$2" /etc/btmalloc.conf && chmod "$3" /etc/btmalloc.conf
      env -u BTM_CONF LD_PRELOAD="$4" "$5" 2>&1 >/dev/null' _ "$tmp" "$1" "$2" "$lib" "$where"
    rm -rf "$tmp/etc"
  }
  before=$status
  for case in "65534 644 owned by uid 65534, not root" "0 666 writable by group or others (mode 0666)" \
              "0 664 writable by group or others (mode 0664)"; do
    read -r owner mode why <<<"$case"
    got=$(untrusted "$owner" "$mode")
    [ "$got" = "btmalloc: /etc/btmalloc.conf: $why; ignored" ] ||
      fail "untrusted /etc/btmalloc.conf ($owner, $mode) as root: stderr was: $got"
  done
  got=$(untrusted 0 644)
  grep -q "^btmalloc: verbose = on (/etc/btmalloc.conf:1)" <<<"$got" ||
    fail "control: a trusted /etc/btmalloc.conf was not applied: $got"
  [ $status = "$before" ] && echo "ok: untrusted /etc/btmalloc.conf ignored by root processes"
else
  echo "note: the untrusted /etc/btmalloc.conf case needs root and unshare -m; not run"
fi

# Set-user-ID: BTM_* and BTM_CONF are ignored.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  cp "$linked" "$tmp/where_setuid"
  chown root:root "$tmp/where_setuid"
  chmod 4755 "$tmp/where_setuid"
  printf 'verbose = on\n' >"$tmp/verbose.conf"
  run_setuid() {
    setpriv --reuid=65534 --regid=65534 --clear-groups \
      env BTM_VERBOSE=1 BTM_ENABLED=0 BTM_CONF="$tmp/verbose.conf" "$tmp/where_setuid" 2>"$tmp/err"
  }
  out=$(run_setuid)
  if grep -q "^btmalloc: " "$tmp/err"; then fail "setuid: environment honoured, printed: $(cat "$tmp/err")"; fi
  [ "$out" = btmalloc ] || fail "setuid: BTM_ENABLED=0 honoured ($out)"
  chmod 755 "$tmp/where_setuid"  # control: without the bit the same variables apply
  out=$(run_setuid)
  grep -q "^btmalloc: verbose = on (environment)" "$tmp/err" ||
    fail "setuid control: BTM_VERBOSE=1 ignored without set-user-ID: $(cat "$tmp/err")"
  echo "ok: set-user-ID"
else
  echo "note: set-user-ID case needs root and setpriv; not run"
fi
fi
exit $status
