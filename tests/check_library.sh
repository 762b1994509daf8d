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
  # A data import (environ, __libc_single_threaded, ...) is a symbol lookup
  # at every start, ~750 instructions; a table of pointers is a relative
  # relocation per pointer.  The library has no data import and 6-7
  # relative relocations (its init and fini arrays, __dso_handle, the TLS
  # image, GOT entries of its own): more than 16 means a table of pointers
  # came back (src/config/config.h).
  relocs=$(readelf -rW "$lib")
  data_imports=$(awk '$3 ~ /GLOB_DAT|R_X86_64_64$|ABS64/ && $5 != "" { print $5 }' <<<"$relocs")
  if [ -n "$data_imports" ]; then
    echo "FAIL: data imports, each looked up at every process start: $(echo $data_imports)"
    fail=1
  fi
  nrelative=$(grep -cE 'R_[A-Z0-9_]*RELATIVE' <<<"$relocs")
  echo "relative relocations: $nrelative"
  if [ "$nrelative" -gt 16 ]; then
    echo "FAIL: $nrelative relative relocations (a table of pointers?): ld.so applies each at every start"
    fail=1
  fi
  # Each loaded segment is a mapping made at every start and torn down at
  # every exit, ~4.7 us here: code and read-only data share one (-z
  # noseparate-code in CMakeLists.txt), writable data has the other.
  nload=$(readelf -lW "$lib" | grep -c '^ *LOAD ')
  echo "loaded segments: $nload"
  if [ "$nload" -gt 2 ]; then
    echo "FAIL: $nload loaded segments, each a mapping at every process start; CMakeLists.txt asks for two"
    fail=1
  fi
  # One initialiser only (capture_environment).  A global the compiler
  # initialises at run time (a _GLOBAL__sub_I_ function) would be reset
  # when ours runs, after other libraries' initialisers have already
  # allocated: the boot arena's bump pointer once was, and blocks were
  # handed out twice.
  ninit=$(readelf -dW "$lib" | awk '/\(INIT_ARRAYSZ\)/ { print $3 }')
  echo "initialisers: $((ninit / 8))"
  if [ "${ninit:-0}" -gt 8 ] || nm "$lib" | grep -q '_GLOBAL__sub_I_'; then
    echo "FAIL: a global is initialised at run time (nm: $(nm "$lib" | grep '_GLOBAL__sub_I_' | awk '{print $3}' | tr '\n' ' '))"
    fail=1
  fi
  # Each glibc symbol version needed costs ld.so 200-450 instructions per
  # process start: shown so that a new one is noticed.
  echo "glibc versions needed: $(readelf -V "$lib" | awk '/Name: GLIBC/ { print $3 }' | sort -V | tr '\n' ' ')"
fi

# The small globals every allocating process writes must share one page with
# the end of .data, which ld.so has written already: spread over four pages
# of .bss they cost `ls /` five more page faults.  Big or rarely used arrays
# go to .lbss (BTM_COLD_BSS in src/core/base.h); a new one left in .bss
# fails here.  x86-64 only (.lbss is its large-data section).
if [ "$(uname -m)" = x86_64 ] && ! grep -q 'libasan' <<<"$needed"; then
  read -r bss_ndx bss_addr bss_size < <(readelf -SW "$lib" | sed 's/\[ */[/' | awk '$2 == ".bss" { gsub(/[][]/, "", $1); print $1, $4, $6 }')
  read -r data_addr < <(readelf -SW "$lib" | awk '$2 == ".data" { print $4 }')
  if [ -n "${bss_addr:-}" ] && [ -n "${data_addr:-}" ]; then
    last=$(( 0x$bss_addr + 0x$bss_size - 1 ))
    if (( last / 4096 != 0x$data_addr / 4096 )); then
      echo "FAIL: .bss (0x$bss_size bytes at 0x$bss_addr) ends past the page of .data (0x$data_addr):"
      readelf -sW "$lib" | awk -v n="$bss_ndx" '$4 == "OBJECT" && $7 == n && ($3 ~ /^0x/ || $3 >= 256) { print "  " $3, $8 }' | sort -rn | head -5
      fail=1
    else
      echo ".bss: 0x$bss_size bytes, on the page of .data"
    fi
  fi
fi

# The kernel maps code in 64 KiB fault-around windows: one page fault and
# 64 KB of Rss each per process (and page faults per child of fork).  The
# read-only data (src/os/layout.ld) and the code a small C process runs
# (entry points, init, the slow paths, the configuration loader and the
# comment-skipping loop of its parser, the thread cache's first refills, the
# heap's publication) are linked first (CMakeLists.txt, BTM_STARTUP) and must
# end below 0x10000; and no helper from libgcc.a or libc_nonshared.a
# (__popcountdi2, pthread_atfork), which the linker puts after everything,
# may be on that path.  Needs the symbol table (not a stripped library).
# tests/library_text_pages.sh measures the result in running programs.
if [ "$(uname -m)" = x86_64 ] && ! grep -q 'libasan' <<<"$needed" && nm "$lib" >/dev/null 2>&1 &&
   [ -n "$(nm "$lib" 2>/dev/null | head -n 1)" ]; then
  startup='^((malloc|free|calloc|realloc)$|btm::init\(\)|btm::malloc_slow\(|btm::reclaim::poll\(|btm::config::load\(|btm::config::load_files\(|btm::config::load_with\(|btm::config::has_btm_variable\(|btm::config::set_defaults\(|btm::config::Parser::(feed|finish|end_line|parse_line)\(|btm::tcache::thread_start\(|btm::tcache::refill\(|btm::tcache::run_pop\(|btm::tcache::free_slow\(|btm::tcache::prepare_placeholder\(|btm::central::refill\(|btm::chunks::slab_alloc\(|btm::chunks::init\(|btm::introspect::publish(_boot)?\(|btm::large::cache::(init|bytes|note_live|take)\(|btm::mesh::configure\(|operator (new|delete)(\[\])?\((unsigned long|void\*|void\*, unsigned long)\)$)'
  late=$(nm -C -S "$lib" | awk '$3 ~ /^[tT]$/' | while read -r addr size _ name; do
           # The unlikely halves GCC splits off ([clone .cold]) belong after the code.
           if grep -qE "$startup" <<<"$name" && [[ $name != *'[clone .cold]'* ]] && (( 0x$addr + 0x$size > 0x10000 )); then echo "$name@0x$addr"; fi
         done)
  helpers=$(nm "$lib" | awk '$2 ~ /^[tT]$/ && ($3 == "__popcountdi2" || $3 == "pthread_atfork") { print $3 }')
  read -r ro_addr ro_size < <(readelf -SW "$lib" | sed 's/\[ */[/' | awk '$2 == ".rodata" { print $4, $6 }')
  if [ -n "${ro_addr:-}" ] && (( 0x$ro_addr + 0x$ro_size > 0x10000 )); then
    late="$late .rodata@0x$ro_addr+0x$ro_size"
  fi
  if [ -n "$late$helpers" ]; then
    echo "FAIL: read-only data or start-up code past the first 64 KiB of the library: $(echo $late $helpers)"
    fail=1
  else
    echo "read-only data and start-up code in the first 64 KiB window"
  fi
fi

# The first call of an import binds it: ld.so writes this library's GOT and
# its own data, about ten copy-on-write page faults in a child of fork, and a
# shell forks for every command.  The imports free and realloc reach are
# bound at init (bind_late_imports in src/core/alloc.cpp), so the children
# of a shell pipeline of builtins, which free before they exit, bind none.
if [ -x /bin/sh ] && ! grep -q 'libasan' <<<"$needed"; then
  abs=$(readlink -f "$lib")
  trace=$(LD_DEBUG=bindings LD_PRELOAD=$abs /bin/sh -c 'true|true|true' 2>&1 >/dev/null)
  parent=$(awk 'NR == 1 { print $1 }' <<<"$trace")
  late=$(grep -F "binding file $abs " <<<"$trace" | awk -v p="$parent" '$1 != p' |
         sed -E "s/.*symbol .([^']*)'.*/\1/" | sort -u | tr '\n' ' ')
  if [ -z "$parent" ]; then
    echo "FAIL: no LD_DEBUG=bindings output from /bin/sh"
    fail=1
  elif [ -n "$late" ]; then
    echo "FAIL: children of fork bind the library's imports (each ~10 page faults): $late"
    fail=1
  else
    echo "forked children bind no import of the library"
  fi
fi

# RELIABILITY.md row 11: a library with initial-exec TLS that a running
# program dlopens (a plug-in, ctypes) takes its TLS from the static TLS
# surplus, which glibc keeps small (~1.6 KiB shared by every such library);
# a big block makes dlopen fail with "cannot allocate memory in static TLS
# block".  btmalloc's is one small struct (t_state); then the library is
# dlopened into a process that did not preload it, and its btm_* API used.
tls=$(readelf -lW "$lib" | awk '$1 == "TLS" { print $6 }')
echo "TLS block: ${tls:-none}"
if [ -n "$tls" ] && (( tls > 64 )); then
  echo "FAIL: the TLS block is $((tls)) bytes; a dlopen into a running program takes it from a small static surplus"
  fail=1
fi
if command -v python3 >/dev/null && ! grep -q 'libasan' <<<"$needed"; then
  abs=$(readlink -f "$lib")
  if out=$(env -u LD_PRELOAD python3 -c '
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.btm_malloc.restype = ctypes.c_void_p
lib.btm_free.argtypes = [ctypes.c_void_p]
p = lib.btm_malloc(1000)
assert p, "btm_malloc returned NULL"
ctypes.memset(p, 0x41, 1000)
lib.btm_free(p)
print("ok")' "$abs" 2>&1) && [ "$out" = ok ]; then
    echo "dlopen into a running python3 and btm_malloc/btm_free: ok"
  else
    echo "FAIL: dlopen of the library into a running python3: $out"
    fail=1
  fi
else
  echo "SKIPPED: the dlopen check needs python3"
fi

if [ $fail = 0 ]; then echo "PASS: $lib needs no C++ runtime; soname $soname; lazy binding, no weak undefined symbols, no data import, two segments, small globals on one page, read-only data and start-up code in one window, no binding after fork, small TLS, loads with dlopen"; fi
exit $fail
