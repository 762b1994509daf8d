#!/usr/bin/env bash
# Checks the built libbtmalloc.so the way a preloading administrator would:
# it must not pull the C++ runtime into every process (DESIGN-NOTES §3), its
# soname must be libbtmalloc.so.1 (issue 2), and loading it must stay cheap
# for short processes (issue 3, /bin/true).
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

# Start-up cost (bench/run.sh startup): ld.so's work for the library is paid
# by every process it is preloaded into, even one that never allocates.
# Immediate binding would resolve every import at load (+30,000 instructions
# of a /bin/true), and each weak undefined symbol is a search of every loaded
# object that finds nothing (~550 instructions each; the C start files bring
# four, see src/os/dso_link.cpp).  Not checked with AddressSanitizer, whose
# runtime wants the start files.
if ! grep -q 'libasan' <<<"$needed"; then
  if grep -qE '\(BIND_NOW\)|\(FLAGS\).*\bBIND_NOW\b|\(FLAGS_1\).*\bNOW\b' <<<"$dynamic"; then
    echo "FAIL: the library is linked with immediate binding (-z now); CMakeLists.txt asks for -z lazy"
    fail=1
  fi
  weak=$(readelf -W --dyn-syms "$lib" | awk '$5 == "WEAK" && $7 == "UND" { print $8 }')
  if [ -n "$weak" ]; then
    echo "FAIL: weak undefined symbols, each searched for at every process start: $(echo $weak)"
    fail=1
  fi
  # Each glibc symbol version needed costs ld.so 200-450 instructions per
  # process start: shown so that a new one is noticed.
  echo "glibc versions needed: $(readelf -V "$lib" | awk '/Name: GLIBC/ { print $3 }' | sort -V | tr '\n' ' ')"
fi

if [ $fail = 0 ]; then echo "PASS: $lib needs no C++ runtime; soname $soname; lazy binding, no weak undefined symbols"; fi
exit $fail
