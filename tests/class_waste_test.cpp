// Issue 22: internal waste of every size class in every mode.  A block of n
// bytes (n > 64) must not take more than 1.25 n (malloc_usable_size), as the
// ordinary classes guarantee: the start-up classes used to round 200 B to
// 512 and 513-2048 B to 2 KiB for the block's whole life (Redis's
// memefficiency test: 0.70 of the bytes useful against the 0.75 required).
//
// Each size from 1 B to 16 KiB is allocated, measured, written to its usable
// end and freed, in a fresh process: the sweep runs through the start-up
// arena (while it lasts) and the start-up class phase, which needs few slow
// paths (one per class).  ctest runs it under several knob sets: default,
// no arena (startup_bytes=0), a large arena, and intern mode with
// partition_after=0 (no start-up phase at all).
//
// Then the Redis-like check: many 200 B and 1 KiB values, live together,
// usable bytes over requested bytes (Redis's used_memory counts usable size).
//
// First of all, while the process is fresh: a calloc of 256 KiB (Python's
// start makes three of 128-256 KiB and touches little of them) must not
// fault its pages in: in the start-up phase it used to be a fresh mapping
// that was then cleared byte by byte.
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "btmalloc.h"

namespace {

int g_failures = 0;

void check_sweep() {
    for (size_t n = 1; n <= 16384; ++n) {
        void* p = malloc(n);
        if (!p) {
            printf("FAIL: malloc(%zu) returned NULL\n", n);
            ++g_failures;
            return;
        }
        size_t u = malloc_usable_size(p);
        // Hidden from the compiler: with _FORTIFY_SOURCE=3 (the RPM build's
        // flags) it knows p holds n bytes and stops a write of u > n, which
        // malloc_usable_size allows.
        asm volatile("" : "+r"(p));
        memset(p, 0x5a, u);
        bool bad = u < n || (n > 64 && u * 4 > n * 5);
        if (bad && ++g_failures <= 10) printf("FAIL: malloc(%zu): usable %zu (limit %zu)\n", n, u, n + n / 4);
        free(p);
    }
}

// Values of `size` bytes until `total` bytes are live; returns usable/requested.
double efficiency(size_t size, size_t total) {
    std::vector<void*> v;
    v.reserve(total / size);
    size_t usable = 0, requested = 0;
    for (size_t i = 0; i < total / size; ++i) {
        size_t n = size - i % (size / 4);  // values of slightly different lengths, as keys and values are
        void* p = malloc(n);
        usable += malloc_usable_size(p);
        requested += n;
        v.push_back(p);
    }
    for (void* p : v) free(p);
    return double(requested) / double(usable);
}

void check_calloc_touches_nothing() {
    const size_t n = 256 * 1024, page = size_t(sysconf(_SC_PAGESIZE));
    auto* p = static_cast<unsigned char*>(calloc(1, n));
    if (!p) {
        printf("FAIL: calloc(1, %zu) returned NULL\n", n);
        ++g_failures;
        return;
    }
    // The whole pages inside the block: a slab's first or last may be shared.
    uintptr_t first = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
    uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
    std::vector<unsigned char> vec((end - first) / page);
    size_t resident = 0;
    if (mincore(reinterpret_cast<void*>(first), end - first, vec.data()) == 0)
        for (unsigned char v : vec) resident += v & 1;
    printf("calloc(1, %zu): %zu of %zu whole pages resident\n", n, resident, vec.size());
    if (resident > 1) {
        printf("FAIL: calloc(1, %zu) faulted in %zu pages before any use\n", n, resident);
        ++g_failures;
    }
    for (size_t i = 0; i < n; i += 4093)
        if (p[i] != 0) {
            printf("FAIL: calloc(1, %zu): byte %zu is %d\n", n, i, p[i]);
            ++g_failures;
            break;
        }
    free(p);
}

}  // namespace

int main() {
    check_calloc_touches_nothing();
    struct btm_stats before {};
    before.version = BTM_STATS_VERSION;
    btm_stats(&before);
    check_sweep();
    struct btm_stats after {};
    after.version = BTM_STATS_VERSION;
    btm_stats(&after);
    printf("sweep 1..16384: %d sizes over 125%%; slow mallocs %llu -> %llu\n", g_failures,
           (unsigned long long)before.malloc_calls_slow, (unsigned long long)after.malloc_calls_slow);
    for (size_t size : {200, 1024}) {
        double e = efficiency(size, 4 << 20);
        printf("values of ~%zu B: requested/usable %.3f\n", size, e);
        if (e < 0.80) {
            printf("FAIL: values of ~%zu B: efficiency %.3f < 0.80\n", size, e);
            ++g_failures;
        }
    }
    return g_failures ? 1 : 0;
}
