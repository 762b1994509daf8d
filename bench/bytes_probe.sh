#!/usr/bin/env bash
# Where a small program's memory goes (issue 22 part 2): runs CMD once under a
# machine-wide preload of LIB (a namespaced /etc/ld.so.preload, as
# pss_probe.sh does; LIB "" for glibc's allocator) with a tiny LD_PRELOAD'd
# destructor (and _exit) that, after the program's atexit handlers, copies
# /proc/self/status and /proc/self/smaps and the present pages
# (/proc/self/pagemap) of every writable anonymous mapping, then prints:
#   hwm / rss_at_exit      VmHWM and VmRSS (KB): whether the exit is the peak
#   cat <name> R P A       Rss, Pss, Anonymous (KB) summed by cause: btm_text,
#                          btm_data (relro + .data/.bss page), btm_lbss (the
#                          anonymous rest of btmalloc's RW segment), res_tables
#                          and res_chunk_header / res_slabs (the reservation's
#                          rw part: tables below the first 2 MiB chunk, the
#                          chunk's first HDR pages, the rest), brk_heap,
#                          other_anon, stack, program, libc, ld_so, other_libs,
#                          locale (locale and gconv files); the probe's own
#                          mappings are left out
#   lbss <KB> <symbol>     btmalloc's resident RW-segment pages, each named
#                          by the first symbol on it
#   btm_stats ...          chunks, slabs, slow mallocs, allocated/large/dirty
#                          KB (chunks 0: the process never left the start-up
#                          phase)
#   shape class <size> ... the slabs of each size class at exit: slabs, data
#                          pages, resident pages, slots handed out (bump) and
#                          out of the slab (used), slots per slab
#                          (bench/heap_shape.cpp); `shape free_resident N`:
#                          free pages still resident
# usage (as root): bytes_probe.sh LIB|"" CMD [ARG...]   HDR (default 10) is
# the chunk header's pages (sizeof(ChunkHeader) / page size).
set -u
# preload_ns.sh runs this script again with LIB alone: CMD goes through the
# environment.
[[ ${2:-} == --inner ]] || { export BYTES_PROBE_CMD; BYTES_PROBE_CMD=$(printf '%q ' "${@:2}"); }
. "$(dirname "$0")/preload_ns.sh" "$@"
eval "set -- $BYTES_PROBE_CMD"
[[ -n $lib ]] && echo "$lib" >/etc/ld.so.preload
gcc -O1 -shared -fPIC -I"$(dirname "$0")/../include" -x c - -o "$tmp/exit_dump.so" <<'C' || exit 1
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "btmalloc.h"
extern int btm_stats(struct btm_stats *out) __attribute__((weak));
static int out_fd = -1;
static char line[512];
static char maps[1 << 17];
static void put(const char *s) { (void)!write(out_fd, s, strlen(s)); }
static void copy_file(const char *path, const char *tag) {
  char buf[4096];
  ssize_t n;
  int fd = open(path, O_RDONLY);
  put(tag);
  if (fd < 0) return;
  while ((n = read(fd, buf, sizeof buf)) > 0) (void)!write(out_fd, buf, (size_t)n);
  close(fd);
}
/* Reads pagemap only: no allocation, so the figures are the program's. */
static void present_pages(void) {
  size_t len = 0;
  ssize_t n;
  int fd = open("/proc/self/maps", O_RDONLY), pm = open("/proc/self/pagemap", O_RDONLY);
  while (fd >= 0 && (n = read(fd, maps + len, sizeof maps - 1 - len)) > 0) len += (size_t)n;
  if (fd >= 0) close(fd);
  maps[len] = 0;
  for (char *p = maps, *end; (end = strchr(p, '\n')); p = end + 1) {
    char *q;
    *end = 0;
    uint64_t lo = strtoull(p, &q, 16), hi = strtoull(q + 1, &q, 16);
    if (q[2] != 'w' || strchr(q, '/') || strchr(q, '[')) continue;
    uint64_t pages = (hi - lo) / 4096, cap = pages > 8192 ? 8192 : pages, ent[512];
    snprintf(line, sizeof line, "PM %lx", (unsigned long)lo);
    put(line);
    for (uint64_t i = 0; i < cap; i += 512) {
      uint64_t k = cap - i < 512 ? cap - i : 512;
      if (pread(pm, ent, k * 8, (off_t)((lo / 4096 + i) * 8)) != (ssize_t)(k * 8)) break;
      for (uint64_t j = 0; j < k; j++)
        if (ent[j] >> 63) { snprintf(line, sizeof line, " %lu", (unsigned long)(i + j)); put(line); }
    }
    put("\n");
  }
  if (pm >= 0) close(pm);
}
__attribute__((destructor)) static void dump(void) {
  if (out_fd >= 0) return;
  const char *path = getenv("EXIT_DUMP_FILE");
  if (!path || (out_fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644)) < 0) { out_fd = 0; return; }
  copy_file("/proc/self/status", "== status\n");
  copy_file("/proc/self/smaps", "== smaps\n");
  put("== pagemap\n");
  present_pages();
  if (btm_stats) {
    struct btm_stats s = {.version = BTM_STATS_VERSION};
    btm_stats(&s);
    snprintf(line, sizeof line, "btm_stats chunks %lu slabs %lu slow_mallocs %lu allocated_kb %lu large_kb %lu dirty_kb %lu\n",
             (unsigned long)s.chunks, (unsigned long)s.slabs, (unsigned long)s.malloc_calls_slow,
             (unsigned long)(s.allocated_bytes >> 10), (unsigned long)(s.large_bytes >> 10), (unsigned long)(s.dirty_bytes >> 10));
    put(line);
  }
  close(out_fd);
}
/* dash leaves through _exit, which runs no destructor. */
void _exit(int status) {
  dump();
  syscall(SYS_exit_group, status);
  __builtin_unreachable();
}
C
# With btmalloc, heap_shape.cpp (built against this tree) adds the slab pages
# by size class.
shape=
if [[ -n $lib ]]; then
  g++ -std=c++20 -O1 -shared -fPIC -I"$(dirname "$0")/../src" -I"$(dirname "$0")/../include" \
    "$(dirname "$0")/heap_shape.cpp" -o "$tmp/heap_shape.so" && shape=$tmp/heap_shape.so
fi
out=$tmp/dump.txt
EXIT_DUMP_FILE=$out HEAP_SHAPE_FILE=$tmp/shape.txt LD_PRELOAD="$tmp/exit_dump.so${shape:+ $shape}" "$@" >/dev/null 2>&1
[[ -s $out ]] || { echo "no dump (the program did not run its destructors)" >&2; exit 1; }
awk '$1 == "VmHWM:" { print "hwm", $2, "KB" } $1 == "VmRSS:" { print "rss_at_exit", $2, "KB" }' "$out"
syms=/dev/null
[[ -n $lib ]] && { syms=$tmp/syms; nm -S -C "$lib" | awk 'NF >= 4 && ($3 == "b" || $3 == "B" || $3 == "d" || $3 == "D")' >"$syms"; }
awk -v syms="$syms" -v lib="$lib" -v hdr="${HDR:-10}" -v prog="$(readlink -f "$(command -v "$1")")" '
  function hex(s,   i, v, c) { v = 0; s = tolower(s); for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + c } return v }
  FILENAME == syms { nsym++; sym_at[nsym] = hex($1); sym_len[nsym] = hex($2); sym_name[nsym] = substr($0, index($0, $4)); next }
  /^== smaps/ { in_smaps = 1; next }
  /^== pagemap/ { in_smaps = 0; in_pm = 1; next }
  in_smaps && /^[0-9a-f]+-[0-9a-f]+ / {
    split($1, r, "-"); n++; lo[n] = hex(r[1]); key[n] = r[1]; hi[n] = hex(r[2]); perm[n] = $2; path[n] = $6
    if (lib != "" && path[n] == lib && $3 ~ /^0+$/ && !base) base = lo[n]
    next
  }
  in_smaps && $1 == "Rss:" { rss[n] = $2 } in_smaps && $1 == "Pss:" { pss[n] = $2 }
  in_smaps && $1 == "Anonymous:" { anon[n] = $2 }
  in_pm && $1 == "PM" { pm[$2] = $0; next }  # by text: mawk prints big numeric subscripts as %.6g
  $1 == "btm_stats" { print }
  END {
    for (i = 1; i <= n; i++) {
      c = ""
      if (path[i] ~ /exit_dump/) continue
      if (lib != "" && path[i] == lib) c = perm[i] == "r-xp" ? "btm_text" : "btm_data"
      else if (path[i] == "" && i > 1 && lib != "" && path[i - 1] == lib) c = "btm_lbss"
      else if (path[i] == "" && perm[i] == "rw-p" && ((i < n && perm[i + 1] == "---p" && hi[i + 1] - lo[i + 1] >= 2^30) || (i > 1 && perm[i - 1] == "---p" && hi[i - 1] - lo[i - 1] >= 2^30))) c = "reservation"
      else if (path[i] == "[heap]") c = "brk_heap"
      else if (path[i] == "[stack]") c = "stack"
      else if (path[i] == "" || path[i] ~ /^\[/) c = "other_anon"
      else if (path[i] == prog) c = "program"
      else if (path[i] ~ /\/libc\.so/) c = "libc"
      else if (path[i] ~ /ld-linux/) c = "ld_so"
      else if (path[i] ~ /\.so/) c = "other_libs"
      else c = "locale"
      if (c == "reservation") {
        # Pages by part: tables below the first 2 MiB boundary, then the chunk.
        chunk = lo[i] % 2097152 ? lo[i] - lo[i] % 2097152 + 2097152 : lo[i]
        k = split(pm[key[i]], pg, " ")
        for (j = 3; j <= k; j++) {
          a = lo[i] + pg[j] * 4096
          part = a < chunk ? "res_tables" : ((a - chunk) % 2097152 < hdr * 4096 ? "res_chunk_header" : "res_slabs")
          R[part] += 4; P[part] += 4; A[part] += 4
        }
        continue
      }
      R[c] += rss[i]; P[c] += pss[i]; A[c] += anon[i]
      if (c == "btm_lbss" || (c == "btm_data" && perm[i] == "rw-p")) {
        k = split(pm[key[i]], pg, " ")
        for (j = 3; j <= k; j++) {
          off = lo[i] - base + pg[j] * 4096; who = "(no symbol)"
          for (s = 1; s <= nsym; s++)
            if (sym_at[s] < off + 4096 && sym_at[s] + sym_len[s] > off) { who = sym_name[s]; break }
          L[who] += 4
        }
      }
    }
    for (c in R) printf "cat %s %d %d %d\n", c, R[c], P[c], A[c]
    for (w in L) printf "lbss %d %s\n", L[w], w
  }' "$syms" "$out" | sort
[[ -s $tmp/shape.txt ]] && sed 's/^/shape /' "$tmp/shape.txt"
exit 0
