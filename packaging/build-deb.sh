#!/usr/bin/env bash
# Builds btmalloc's Debian packages into dist/: the source package (.dsc,
# orig and debian tarballs), the binary packages libbtmalloc1,
# libbtmalloc-dev and btmalloc (with their -dbgsym packages), .buildinfo and
# .changes; then runs lintian over the .changes, which must report no error
# and no warning that is not overridden (with a reason) in packaging/debian.
#
#   packaging/build-deb.sh [--no-lintian]
#
# Installs what the build needs with apt-get (root, or sudo).  The package
# build runs the quick and config tests; DEB_BUILD_OPTIONS=nocheck skips
# them.  BTM_DIST_DIR overrides dist/.  The source tree is the files git
# tracks, as they are in the work tree (uncommitted edits included).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${BTM_DIST_DIR:-$repo/dist}
lintian=1
for arg in "$@"; do
  case $arg in
    --no-lintian) lintian=0 ;;
    *) echo "usage: $0 [--no-lintian]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
tools=(build-essential debhelper devscripts dpkg-dev fakeroot lintian git)
missing=()
for p in "${tools[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

deb_version=$(dpkg-parsechangelog -l "$repo/packaging/debian/changelog" -S Version)
upstream=${deb_version%-*}
cmake_version=$(sed -n 's/^project(btmalloc VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")
if [ "$upstream" != "$cmake_version" ]; then
  echo "build-deb: packaging/debian/changelog says $upstream, CMakeLists.txt says $cmake_version;" \
       "add a changelog entry (dch -v $cmake_version-1)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/btmalloc-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Some tests drop privileges and must still reach the build tree.
chmod 755 "$work"
src=$work/btmalloc-$upstream

# The upstream tarball: the tracked files, without build output.
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$repo" && git ls-files -z --cached |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) >"$work/files"
else
  (cd "$repo" && find . -path ./.git -prune -o -path './build*' -prune -o -path ./dist -prune \
     -o -type f -printf '%P\0') >"$work/files"
fi
tar -C "$repo" --null -T "$work/files" --transform "s,^,btmalloc-$upstream/," \
    --owner=0 --group=0 --numeric-owner --sort=name -cJf "$work/btmalloc_$upstream.orig.tar.xz"
tar -C "$work" -xf "$work/btmalloc_$upstream.orig.tar.xz"
cp -r "$repo/packaging/debian" "$src/debian"

echo "== installing build dependencies"
$SUDO apt-get -o DPkg::Lock::Timeout=600 build-dep -y -qq "$src" >/dev/null

echo "== dpkg-buildpackage (log: $out/build-deb.log)"
mkdir -p "$out"
start=$(date +%s)
if ! (cd "$src" && dpkg-buildpackage -us -uc -j"$(nproc)") >"$out/build-deb.log" 2>&1; then
  tail -n 60 "$out/build-deb.log"
  echo "build-deb: dpkg-buildpackage failed; the whole log is $out/build-deb.log" >&2
  exit 1
fi
echo "   built in $(( $(date +%s) - start )) s"

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
changes=btmalloc_${deb_version}_${arch}.changes
# The files the .changes names, and nothing older, go to dist/.
rm -f "$out"/btmalloc_* "$out"/libbtmalloc*_*.deb "$out"/btmalloc-dbgsym_* "$out"/libbtmalloc*-dbgsym_*
files=$(sed -n '/^Files:/,/^[^ ]/s/^ [0-9a-f]\{32\} [0-9]\+ [^ ]\+ [^ ]\+ //p' "$work/$changes")
for f in $changes $files; do cp "$work/$f" "$out/"; done
echo "== packages in $out"
(cd "$out" && ls -1 $changes $files)

if [ $lintian = 1 ]; then
  echo "== lintian"
  # Errors and warnings fail; info tags are shown, not fatal.  Overridden
  # tags (packaging/debian/*.lintian-overrides, each with its reason) are
  # not shown: --show-overrides would make them count as failures.
  lintian --fail-on error,warning --info --display-info "$out/$changes"
  echo "lintian: no errors or warnings"
fi
