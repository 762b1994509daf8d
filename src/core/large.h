// Large objects (above the largest size class): each has its own mapping,
// recorded in an address-keyed table so free() can tell them from foreign
// pointers without dereferencing anything.  Freed blocks go to a cache that
// follows the program's recent demand (large_cache.h), so programs that
// replace large buffers do not pay mmap, munmap and page faults every time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::large {

void init(uint64_t cache_bytes);
// A block of at least n bytes aligned to `align` (a power of two >= page
// size or <= 16), zeroed if `zero`.  Null on failure.
void* alloc(size_t n, size_t align, bool zero);
// Frees p if it is a large block of ours.  kFreedBefore: p was one and was
// freed (its mapping size in *size; *cached if the block is in the cache,
// else it was unmapped: a double free unless someone mapped p since).
enum class Free { kFreed, kNotOurs, kFreedBefore };
Free free(void* p, size_t* size, bool* cached);
// Usable size of large block p, or 0 if p is not one.
size_t usable(const void* p);
// Resizes large block p in place or by moving it (mremap); null on failure
// (p is then unchanged).  Precondition: usable(p) != 0.
void* realloc(void* p, size_t n);
// Unmaps every cached block; returns the bytes released.
size_t trim();
// Unmaps the cached blocks that recent demand no longer justifies (reclaim
// ticks call it); returns the bytes released.
size_t decay();
// Bytes cached now, without a lock (reclaim's "is there work" question).
uint64_t cached_bytes();

struct Counters {
    uint64_t live_bytes, cached_bytes, released_bytes;
};
Counters counters();
void lock_all();
void unlock_all(bool child);
bool lock_held();  // see SpinLock::is_locked

}  // namespace btm::large
