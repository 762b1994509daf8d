#!/usr/bin/env bash
# Builds btmalloc's binary RPMs (btmalloc, btmalloc-devel, btmalloc-static)
# from packaging/rpm/btmalloc.spec with rpmbuild, on this Debian machine,
# into dist/; then runs rpmlint over the spec and the packages, which must
# report no error.
#
#   packaging/build-rpm.sh [--no-rpmlint]
#
# Installs rpm and rpmlint with apt-get.  Debian has no RPM database of the
# build dependencies, so rpmbuild runs with --nodeps (the Debian packages
# that scripts/install-deps.sh installs provide them), and Fedora's cmake
# and systemd macros come from packaging/rpm/macros.debian-host.  The %check
# section runs the quick and config tests; BTM_RPM_NOCHECK=1 skips it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${BTM_DIST_DIR:-$repo/dist}
rpmlint=1
for arg in "$@"; do
  case $arg in
    --no-rpmlint) rpmlint=0 ;;
    *) echo "usage: $0 [--no-rpmlint]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
need=(rpm git cmake ninja-build g++ pkg-config liburing-dev libsystemd-dev libgtest-dev mandoc)
[ $rpmlint = 1 ] && need+=(rpmlint)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

spec=$repo/packaging/rpm/btmalloc.spec
version=$(sed -n 's/^Version: *//p' "$spec")
cmake_version=$(sed -n 's/^project(btmalloc VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")
if [ "$version" != "$cmake_version" ]; then
  echo "build-rpm: btmalloc.spec says $version, CMakeLists.txt says $cmake_version" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/btmalloc-rpm.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # some tests drop privileges and must still reach the build tree
top=$work/rpmbuild
mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}

# Source0: the files git tracks, as they are in the work tree.
(cd "$repo" && git ls-files -z --cached |
   while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) >"$work/files"
tar -C "$repo" --null -T "$work/files" --transform "s,^,btmalloc-$version/," \
    --owner=0 --group=0 --numeric-owner --sort=name -czf "$top/SOURCES/btmalloc-$version.tar.gz"
cp "$spec" "$top/SPECS/"

macros=()
if [ -z "$(rpm --eval '%{?cmake:yes}')" ]; then
  macros=(--load "$repo/packaging/rpm/macros.debian-host")
fi
check=()
[ "${BTM_RPM_NOCHECK:-0}" = 1 ] && check=(--nocheck)

echo "== rpmbuild (log: $out/build-rpm.log)"
mkdir -p "$out"
start=$(date +%s)
if ! rpmbuild "${macros[@]}" -bb --nodeps "${check[@]}" \
       --define "_topdir $top" --define "debug_package %{nil}" \
       --define "_smp_mflags -j$(nproc)" \
       "$top/SPECS/btmalloc.spec" >"$out/build-rpm.log" 2>&1; then
  tail -n 60 "$out/build-rpm.log"
  echo "build-rpm: rpmbuild failed; the whole log is $out/build-rpm.log" >&2
  exit 1
fi
echo "   built in $(( $(date +%s) - start )) s"
rm -f "$out"/btmalloc-*.rpm
find "$top/RPMS" -name '*.rpm' -exec cp {} "$out/" \;
echo "== packages in $out"
(cd "$out" && ls -1 btmalloc-*.rpm)

if [ $rpmlint = 1 ]; then
  echo "== rpmlint"
  # rpmlint exits non-zero on errors; warnings are printed, not fatal.
  rpmlint -r "$repo/packaging/rpm/btmalloc.rpmlintrc" "$spec" "$out"/btmalloc-*.rpm
fi
