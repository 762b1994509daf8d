// The entry layer: every exported function is a few lines -- check the
// arguments with glibc's semantics, set errno, capture the return address,
// delegate to the core.  The return address is read here, in the exported
// function itself, so the partition is the user's call site.
#pragma once

#include <errno.h>

#include "core/alloc.h"
#include "core/globals.h"

#define BTM_RA() reinterpret_cast<uintptr_t>(__builtin_return_address(0))

namespace btm::api {

// memalign's rules (glibc): alignments up to 16 are plain malloc, others are
// rounded up to a power of two; absurd ones fail with EINVAL.
BTM_INLINE void* memalign_impl(size_t align, size_t n, uintptr_t ra) {
    if (align <= kAlignment) return malloc_fast(n, ra);
    if (align > (~size_t(0) >> 1) + 1) {
        errno = EINVAL;
        return nullptr;
    }
    if (align & (align - 1)) align = size_t(1) << (64 - __builtin_clzll(align));
    return aligned_impl(align, n, ra);
}

BTM_INLINE int posix_memalign_impl(void** out, size_t align, size_t n, uintptr_t ra) {
    if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
    int saved = errno;
    void* p = aligned_impl(align, n, ra);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *out = p;
    return 0;
}

BTM_INLINE void* reallocarray_impl(void* p, size_t count, size_t size, uintptr_t ra) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return nullptr;
    }
    return realloc_impl(p, total, ra);
}

BTM_INLINE void* pvalloc_impl(size_t n, uintptr_t ra) {
    if (BTM_UNLIKELY(!g.initialized)) init();
    size_t page = g.page_mask + 1;
    size_t rounded;
    if (__builtin_add_overflow(n, page - 1, &rounded)) {
        errno = ENOMEM;
        return nullptr;
    }
    rounded &= ~(page - 1);
    return aligned_impl(page, rounded ? rounded : page, ra);
}

}  // namespace btm::api
