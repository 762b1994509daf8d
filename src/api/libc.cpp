// glibc's malloc API, exported when BTM_OVERRIDE_LIBC is on.
// (glibc's headers give these functions attributes an alias cannot repeat.)
#pragma GCC diagnostic ignored "-Wmissing-attributes"
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include "api/entry.h"
#include "core/forward.h"
#include "core/globals.h"
#include "features/stats.h"

#if BTM_CFG_OVERRIDE_LIBC

using namespace btm;

extern "C" {

BTM_EXPORT void* malloc(size_t n) { return malloc_fast(n, BTM_RA()); }

BTM_EXPORT void free(void* p) { free_fast(p, BTM_RA()); }

BTM_EXPORT void* calloc(size_t count, size_t size) { return calloc_impl(count, size, BTM_RA()); }

BTM_EXPORT void* realloc(void* p, size_t n) { return realloc_impl(p, n, BTM_RA()); }

BTM_EXPORT void* reallocarray(void* p, size_t count, size_t size) {
    return api::reallocarray_impl(p, count, size, BTM_RA());
}

BTM_EXPORT void* memalign(size_t align, size_t n) { return api::memalign_impl(align, n, BTM_RA()); }

// glibc 2.36 treats aligned_alloc as memalign: any size, alignment rounded up.
BTM_EXPORT void* aligned_alloc(size_t align, size_t n) { return api::memalign_impl(align, n, BTM_RA()); }

BTM_EXPORT int posix_memalign(void** out, size_t align, size_t n) {
    return api::posix_memalign_impl(out, align, n, BTM_RA());
}

// The obsolete and the C23 entry points and the statistics are BTM_LATE:
// programs built against this glibc rarely call them, and not at start.
BTM_EXPORT BTM_LATE void* valloc(size_t n) {
    if (BTM_UNLIKELY(!g.initialized)) init();
    return api::memalign_impl(g.page_mask + 1, n, BTM_RA());
}

BTM_EXPORT BTM_LATE void* pvalloc(size_t n) { return api::pvalloc_impl(n, BTM_RA()); }

BTM_EXPORT size_t malloc_usable_size(void* p) { return usable_size(p, "malloc_usable_size()", BTM_RA()); }

BTM_EXPORT BTM_LATE void cfree(void* p) { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void free_sized(void* p, size_t) { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void free_aligned_sized(void* p, size_t, size_t) { free_fast(p, BTM_RA()); }

BTM_EXPORT int malloc_trim(size_t) { return trim_impl() > 0 ? 1 : 0; }

BTM_EXPORT int mallopt(int, int) { return 1; }

BTM_EXPORT BTM_LATE void malloc_stats(void) {
    if (g_forward) {
        if (g_real.stats) g_real.stats();
        return;
    }
    stats::profile(2);
}

BTM_EXPORT BTM_LATE struct mallinfo2 mallinfo2(void) {
    if (g_forward && g_real.mallinfo2) return g_real.mallinfo2();
    return stats::mallinfo2();
}

BTM_EXPORT BTM_LATE struct mallinfo mallinfo(void) {
    struct mallinfo2 m = stats::mallinfo2();
    struct mallinfo r {};
    r.arena = int(m.arena);
    r.ordblks = int(m.ordblks);
    r.hblks = int(m.hblks);
    r.hblkhd = int(m.hblkhd);
    r.uordblks = int(m.uordblks);
    r.fordblks = int(m.fordblks);
    r.keepcost = int(m.keepcost);
    return r;
}

BTM_EXPORT BTM_LATE int malloc_info(int options, FILE* out) {
    if (g_forward && g_real.info) return g_real.info(options, out);
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    return stats::write_info(out);
}

// The aliases glibc exports for code that wants "the real malloc".
BTM_EXPORT void* __libc_malloc(size_t) __attribute__((alias("malloc")));
BTM_EXPORT void __libc_free(void*) __attribute__((alias("free")));
BTM_EXPORT void* __libc_calloc(size_t, size_t) __attribute__((alias("calloc")));
BTM_EXPORT void* __libc_realloc(void*, size_t) __attribute__((alias("realloc")));
BTM_EXPORT void* __libc_memalign(size_t, size_t) __attribute__((alias("memalign")));
BTM_EXPORT void* __libc_valloc(size_t) __attribute__((alias("valloc")));
BTM_EXPORT void* __libc_pvalloc(size_t) __attribute__((alias("pvalloc")));
BTM_EXPORT int __posix_memalign(void**, size_t, size_t) __attribute__((alias("posix_memalign")));

}  // extern "C"

#endif
