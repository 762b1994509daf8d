#!/usr/bin/env bash
# btmctl enable/disable UNIT on an offline tree (--root, as systemctl --root
# does): the drop-in merges the unit's own LD_PRELOAD (from its unit file
# and drop-ins, quotes undone, specifiers and escapes kept), is idempotent, and
# systemd-analyze verify accepts it without a word; disable removes it.
# Bad unit names are usage errors (2); missing or masked units fail (1).
#   units_test.sh BTMCTL LIBRARY
set -u
btmctl=$1
lib_file=$(readlink -f "$2")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/btm-units-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh"

root=$tmp/root
lib=/usr/lib/btm-test/libbtmalloc.so.1
units=$root/usr/lib/systemd/system
etc=$root/etc/systemd/system
mkdir -p "$root/usr/lib/btm-test" "$units/demo.service.d" "$units/web@.service.d" "$etc"
cp "$lib_file" "$root$lib"
opts=(--root "$root" --library "$lib")

cat >"$units/demo.service" <<'EOF'
[Unit]
Description=btmctl test service

[Service]
ExecStart=/bin/true
Environment="LD_PRELOAD=/usr/lib/libfoo.so" OTHER=1
EOF
# A later drop-in's LD_PRELOAD replaces the unit's, across a continued line.
cat >"$units/demo.service.d/10-local.conf" <<'EOF'
[Service]
Environment=X=1 \
  LD_PRELOAD=/usr/lib/libbar.so
EOF
cat >"$units/plain.service" <<'EOF'
[Service]
ExecStart=/bin/true
EOF
cat >"$units/web@.service" <<'EOF'
[Service]
ExecStart=/bin/true %i
EOF
cat >"$units/web@.service.d/20-preload.conf" <<'EOF'
[Service]
Environment='LD_PRELOAD=/opt/a%%b.so /opt/c.so'
EOF
# Specifiers and C escapes stay as the unit wrote them: systemd expands
# them when it reads the drop-in, as it did in the unit.
cat >"$units/spec.service" <<'EOF'
[Service]
ExecStart=/bin/true
Environment=LD_PRELOAD=/opt/sp\x20ace/libq.so:%h/libbar.so "OTHER=\"quoted\""
EOF
ln -s /dev/null "$etc/masked.service"

# Usage and refusals.
run 2 "$btmctl" enable web@ "${opts[@]}";           has "$err" "is a template"
run 2 "$btmctl" enable demo.socket "${opts[@]}";    has "$err" "is not a service"
run 2 "$btmctl" enable 'bad/name' "${opts[@]}";     has "$err" "is not a unit name"
run 2 "$btmctl" enable demo --root;                 has "$err" "--root needs a DIR"
run 1 "$btmctl" enable nothere "${opts[@]}";        has "$err" "nothere.service: no such unit"
run 1 "$btmctl" enable masked "${opts[@]}";         has "$err" "masked.service is masked"
run 1 "$btmctl" enable demo --root "$root" --library /usr/lib/none.so
has "$err" "cannot open the library"
[ -e "$etc/demo.service.d" ] && fail "a refused enable created $etc/demo.service.d"

# The drop-in: btmalloc first, then the unit's own entries.
dropin=$etc/demo.service.d/50-btmalloc.conf
run 0 "$btmctl" enable demo "${opts[@]}"
has "$out" "wrote $dropin (LD_PRELOAD=$lib:/usr/lib/libbar.so)"
has "$out" "offline tree"
has "$out" "systemctl restart demo.service"
grep -qxF "Environment=\"LD_PRELOAD=$lib:/usr/lib/libbar.so\"" "$dropin" || fail "drop-in: $(cat "$dropin")"
grep -qx '\[Service\]' "$dropin" || fail "drop-in has no [Service] section"
[ "$(stat -c %a "$dropin")" = 644 ] || fail "drop-in mode $(stat -c %a "$dropin")"
mtime=$(stat -c %Y.%i "$dropin")
run 0 "$btmctl" enable demo.service "${opts[@]}"
has "$out" "already enabled"
[ "$(stat -c %Y.%i "$dropin")" = "$mtime" ] || fail "second enable rewrote the drop-in"

run 0 "$btmctl" enable plain "${opts[@]}"
grep -qxF "Environment=\"LD_PRELOAD=$lib\"" "$etc/plain.service.d/50-btmalloc.conf" ||
  fail "plain drop-in: $(cat "$etc/plain.service.d/50-btmalloc.conf")"

# An instance gets its template's settings; '%' is written as '%%'.
run 0 "$btmctl" enable web@one "${opts[@]}"
grep -qxF "Environment=\"LD_PRELOAD=$lib:/opt/a%%b.so:/opt/c.so\"" "$etc/web@one.service.d/50-btmalloc.conf" ||
  fail "instance drop-in: $(cat "$etc/web@one.service.d/50-btmalloc.conf")"

run 0 "$btmctl" enable spec "${opts[@]}"
grep -qxF "Environment=\"LD_PRELOAD=$lib:/opt/sp\\x20ace/libq.so:%h/libbar.so\"" "$etc/spec.service.d/50-btmalloc.conf" ||
  fail "specifiers and escapes not kept: $(cat "$etc/spec.service.d/50-btmalloc.conf")"

# systemd-analyze verify reads the unit with its drop-ins from the unit's
# own directory; copies of the files make that directory.
if command -v systemd-analyze >/dev/null; then
  v=$tmp/verify
  mkdir -p "$v/demo.service.d"
  cp "$units/demo.service" "$v/"
  cp "$units/demo.service.d/10-local.conf" "$dropin" "$v/demo.service.d/"
  verify=$(systemd-analyze verify --man=no "$v/demo.service" 2>&1)
  rc=$?
  [ $rc -eq 0 ] && [ -z "$verify" ] || fail "systemd-analyze verify (exit $rc): $verify"
  # The same check notices a broken drop-in, so it did read ours.
  echo 'Environment="LD_PRELOAD=unterminated' >>"$v/demo.service.d/50-btmalloc.conf"
  verify=$(systemd-analyze verify --man=no "$v/demo.service" 2>&1)
  grep -q '50-btmalloc.conf' <<<"$verify" || fail "verify did not read the drop-in: $verify"
  # The example drop-in installed to /usr/share/btmalloc, filled in.
  sed "s|@BTM_LD_PRELOAD@|$lib|" "$(dirname "$0")/../../systemd/btmalloc-preload.conf.in" \
    >"$v/demo.service.d/50-btmalloc.conf"
  verify=$(systemd-analyze verify --man=no "$v/demo.service" 2>&1)
  [ -z "$verify" ] || fail "systemd-analyze verify of the example drop-in: $verify"
else
  echo "note: systemd-analyze is not installed; drop-ins not verified"
fi

# disable removes the drop-in and its then empty directory, once.
run 0 "$btmctl" disable demo "${opts[@]}"
has "$out" "removed $dropin"
[ -e "$etc/demo.service.d" ] && fail "disable left $etc/demo.service.d"
run 0 "$btmctl" disable demo "${opts[@]}"
has "$out" "not enabled"
mkdir -p "$etc/plain.service.d" && echo '[Service]' >"$etc/plain.service.d/10-admin.conf"
run 0 "$btmctl" disable plain "${opts[@]}"
[ -e "$etc/plain.service.d/10-admin.conf" ] || fail "disable removed someone else's drop-in"

# status on the live system: always runs, lists what maps libbtmalloc.
run 0 "$btmctl" status
has "$out" "machine-wide:"
has "$out" "btmalloc: RSS"

[ $status -eq 0 ] && echo "ok: service drop-ins"
exit $status
