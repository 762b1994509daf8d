#!/usr/bin/env bash
# Builds the RPMs with packaging/build-rpm.sh (rpmbuild on this Debian
# machine, %check included, rpmlint without errors) and compares what each
# package holds (rpm -qlp, less the /usr/lib/.build-id links) with the
# expected lists below; /etc/btmalloc.conf must be %config(noreplace) and
# LICENSE a %license file.
#   rpm_test.sh REPO_DIR OUT_DIR
set -u
repo=$1
out=$2
if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
  echo "SKIPPED: installing rpm and rpmlint needs root or sudo"
  exit 77
fi
if ! command -v apt-get >/dev/null; then
  echo "SKIPPED: build-rpm.sh installs rpm with apt-get (Debian)"
  exit 77
fi
status=0
fail() { echo "FAIL: $*"; status=1; }

start=$(date +%s)
if ! BTM_DIST_DIR=$out bash "$repo/packaging/build-rpm.sh"; then
  echo "FAIL: packaging/build-rpm.sh"
  exit 1
fi
echo "build-rpm.sh took $(( $(date +%s) - start )) s"

version=$(sed -n 's/^Version: *//p' "$repo/packaging/rpm/btmalloc.spec")
release=$(sed -n 's/^Release: *\([0-9]*\).*/\1/p' "$repo/packaging/rpm/btmalloc.spec")
arch=$(rpm --eval '%{_arch}')
libdir=$(rpm --eval '%{_libdir}')

expect_btmalloc="
/etc/btmalloc.conf
/etc/default/btm-pageout
/usr/bin/btmctl
/usr/bin/btm-pageout
/usr/lib/systemd/system/btm-pageout.service
/usr/lib/systemd/system/btm-pageout.timer
/usr/lib/systemd/system/btm-metrics.service
/usr/lib/systemd/system/btm-metrics.timer
/usr/share/man/man8/btm-pageout.8.gz
$libdir/libbtmalloc.so.1.*.*
$libdir/libbtmalloc.so.1
/usr/share/btmalloc
/usr/share/btmalloc/btmalloc-preload.conf
/usr/share/doc/btmalloc
/usr/share/doc/btmalloc/README.md
/usr/share/licenses/btmalloc
/usr/share/licenses/btmalloc/LICENSE
/usr/share/man/man5/btmalloc.conf.5.gz
/usr/share/man/man7/btmalloc.7.gz
/usr/share/man/man8/btmctl.8.gz"
# The exported targets file is named after the build type.
expect_devel="
/usr/include/btmalloc.h
$libdir/cmake/btmalloc
$libdir/cmake/btmalloc/btmallocConfig.cmake
$libdir/cmake/btmalloc/btmallocConfigVersion.cmake
$libdir/cmake/btmalloc/btmallocTargets-*.cmake
$libdir/cmake/btmalloc/btmallocTargets.cmake
$libdir/libbtmalloc.so
$libdir/pkgconfig/btmalloc.pc
/usr/share/man/man3/btmalloc.3.gz
/usr/share/man/man3/btm_*.3.gz"
expect_static="
$libdir/libbtmalloc.a"

# compare PACKAGE_FILE EXPECTED: every file matches one expected pattern and
# every pattern matches a file.
compare() {
  local rpm=$1 expected=$2 f p found
  local files
  files=$(rpm -qlp "$rpm" | grep -v '^/usr/lib/\.build-id')
  while IFS= read -r f; do
    found=0
    while IFS= read -r p; do
      [ -n "$p" ] && [[ $f == $p ]] && found=1
    done <<<"$expected"
    [ $found = 1 ] || fail "$(basename "$rpm") holds unexpected $f"
  done <<<"$files"
  while IFS= read -r p; do
    [ -n "$p" ] || continue
    found=0
    while IFS= read -r f; do [[ $f == $p ]] && found=1; done <<<"$files"
    [ $found = 1 ] || fail "$(basename "$rpm") lacks $p"
  done <<<"$expected"
}

main=$out/btmalloc-$version-$release.$arch.rpm
compare "$main" "$expect_btmalloc"
compare "$out/btmalloc-devel-$version-$release.$arch.rpm" "$expect_devel"
compare "$out/btmalloc-static-$version-$release.$arch.rpm" "$expect_static"

flags=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$main" | sed -n 's|^/etc/btmalloc.conf ||p')
[ "$flags" = cn ] || fail "/etc/btmalloc.conf has file flags '$flags', wanted cn (%config(noreplace))"
[ "$(rpm -qLp "$main")" = /usr/share/licenses/btmalloc/LICENSE ] || fail "%license: $(rpm -qLp "$main")"
rpm -qp --scripts "$main" >"$out/scripts.txt"
grep -q 'ld.so.preload' "$out/scripts.txt" || fail "no %preun for /etc/ld.so.preload"
# %systemd_post/preun/postun: presets on install, disable (links too) on removal.
grep -q 'preset btm-pageout.service btm-pageout.timer' "$out/scripts.txt" || fail "no %systemd_post"
grep -q 'disable --now btm-pageout.service btm-pageout.timer' "$out/scripts.txt" || fail "no %systemd_preun"
grep -q '^postuninstall scriptlet' "$out/scripts.txt" || fail "no %systemd_postun"
rpm -qp --requires "$out/btmalloc-devel-$version-$release.$arch.rpm" | grep -q "^btmalloc(" ||
  fail "btmalloc-devel does not require btmalloc"

# The distribution's hardening flags (macros.debian-host mirrors Fedora's
# %optflags): the tools bind now and use the stack protector; the library
# keeps lazy binding and needs libc only.
x=$out/extract
rm -rf "$x" && mkdir -p "$x"
(cd "$x" && rpm2cpio "$main" | cpio -idm --quiet)
for tool in btmctl btm-pageout; do
  dyn=$(readelf -d "$x/usr/bin/$tool")
  grep -qE 'BIND_NOW|FLAGS_1.* NOW' <<<"$dyn" || fail "$tool is not linked with -z now"
  readelf -W --dyn-syms "$x/usr/bin/$tool" | grep -q __stack_chk_fail || fail "$tool has no stack protector"
done
so=$(ls "$x$libdir"/libbtmalloc.so.1.*.*)
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
[ "$needed" = "libc.so.6 " ] || fail "the library needs $needed(libc.so.6 only, wanted)"
readelf -d "$so" | grep -qE 'BIND_NOW|FLAGS_1.* NOW' && fail "the library is linked with -z now (DESIGN §5: lazy)"

[ $status -eq 0 ] && echo "ok: RPMs built, rpmlint clean of errors, contents as expected"
exit $status
