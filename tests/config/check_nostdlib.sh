#!/bin/sh
# The configuration code must need nothing but libc: it runs inside malloc in
# every process.  $1 is a shared library linked from src/config alone.
set -eu
lib=$1
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "NEEDED: $needed"
for n in $needed; do
  case $n in
    libc.so.*) ;;
    *) echo "FAIL: src/config needs $n"; exit 1 ;;
  esac
done
# Nothing that allocates either.
# (__cxa_finalize is glibc's, referenced by every shared object's crtbegin.)
bad=$(nm -D --undefined-only "$lib" | awk '{print $2}' | grep -v '^__cxa_finalize@' |
      grep -E '^(malloc|calloc|realloc|free|_Zn|_Zd|__cxa_|fopen|getenv|strerror|opendir|printf|snprintf)' || true)
if [ -n "$bad" ]; then
  echo "FAIL: src/config calls: $bad"
  exit 1
fi
echo "ok: libc only, no allocating calls"
