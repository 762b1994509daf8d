#!/usr/bin/env bash
# Checks the built libbtmalloc.so the way a preloading administrator would:
# it must not pull the C++ runtime into every process (DESIGN-NOTES §3), and
# its soname must be libbtmalloc.so.1 (issue 2).
# Usage: check_library.sh path/to/libbtmalloc.so
set -u
lib=${1:?usage: check_library.sh LIBRARY}
fail=0

if [ ! -f "$lib" ]; then
  echo "FAIL: $lib does not exist"
  exit 1
fi

dynamic=$(readelf -d "$lib") || { echo "FAIL: readelf -d $lib"; exit 1; }
needed=$(awk '/\(NEEDED\)/ { gsub(/[][]/, "", $NF); print $NF }' <<<"$dynamic")
echo "NEEDED: $(echo $needed)"
if grep -qE 'libstdc\+\+|libgcc_s' <<<"$needed"; then
  echo "FAIL: readelf -d shows the C++ runtime among the NEEDED libraries"
  fail=1
fi

resolved=$(ldd "$lib" 2>&1) || { echo "FAIL: ldd $lib: $resolved"; exit 1; }
echo "ldd:"
sed 's/^/  /' <<<"$resolved"
if grep -qE 'libstdc\+\+|libgcc_s' <<<"$resolved"; then
  echo "FAIL: ldd shows libstdc++ or libgcc_s"
  fail=1
fi
if grep -q 'not found' <<<"$resolved"; then
  echo "FAIL: ldd cannot resolve a dependency"
  fail=1
fi

soname=$(awk '/\(SONAME\)/ { gsub(/[][]/, "", $NF); print $NF }' <<<"$dynamic")
if [ "$soname" != "libbtmalloc.so.1" ]; then
  echo "FAIL: soname is '$soname', expected libbtmalloc.so.1"
  fail=1
fi

if [ $fail = 0 ]; then echo "PASS: $lib needs no C++ runtime; soname $soname"; fi
exit $fail
