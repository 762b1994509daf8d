// enabled = off: btmalloc steps aside for the whole life of the process and
// every entry point hands its call to the next allocator in the search order
// (glibc's).  Decided once, in init, before the first allocation is served.
//
// Invariant: in forwarding mode the heap is never published (g.base and
// g.size stay 0, thread caches stay the placeholder), so the fast paths fall
// into slow paths, which check `g_forward` and call through `real`.  Blocks
// the boot arena served during init stay ours and are never passed on.
#pragma once

#include <malloc.h>
#include <stdio.h>

#include <cstddef>

namespace btm {

struct RealAllocator {
    void* (*malloc)(size_t);
    void (*free)(void*);
    void* (*calloc)(size_t, size_t);
    void* (*realloc)(void*, size_t);
    void* (*memalign)(size_t, size_t);
    size_t (*usable_size)(void*);
    int (*trim)(size_t);
    void (*stats)();
    struct mallinfo2 (*mallinfo2)();
    int (*info)(int, FILE*);
};

extern bool g_forward;
extern RealAllocator g_real;

namespace forward {
// Looks glibc's functions up; false if any of the allocation ones is missing.
bool resolve();
}  // namespace forward

}  // namespace btm
