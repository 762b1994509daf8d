// Large objects (above the largest size class): each has its own mapping,
// recorded in an address-keyed table so free() can tell them from foreign
// pointers without dereferencing anything.  Freed blocks go to a cache that
// follows the program's recent demand (large_cache.h), so programs that
// replace large buffers do not pay mmap, munmap and page faults every time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/site_tally.h"

namespace btm::chunks {
struct Range;
}

namespace btm::large {

void init(uint64_t cache_bytes);
// A block of at least n bytes aligned to `align` (a power of two >= page
// size or <= 16), zeroed if `zero`, recorded as made by `site` (a return
// address) now (chunks::stamp).  Null on failure.
void* alloc(size_t n, size_t align, bool zero, uintptr_t site);
// Frees p if it is a large block of ours.  kFreedBefore: p was one and was
// freed (its mapping size in *size; *cached if the block is in the cache,
// else it was unmapped: a double free unless someone mapped p since).
enum class Free { kFreed, kNotOurs, kFreedBefore };
Free free(void* p, size_t* size, bool* cached);
// Usable size of large block p, or 0 if p is not one.
size_t usable(const void* p);
// Resizes large block p in place or by moving it (mremap); null on failure
// (p is then unchanged).  A moved block is `site`'s, stamped now, as a
// small block realloc moves is.  Precondition: usable(p) != 0.
void* realloc(void* p, size_t n, uintptr_t site);
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
// Adds every live block to `t` under its call site; returns the live bytes.
uint64_t tally(SiteTally* t);
// Cold tiering: the live blocks stamped before `before` (0, stamped before
// the clock started, counts as `base`), from table slot *cursor on; returns
// how many were written (0 when the walk is done) and advances *cursor.
size_t cold_ranges(size_t* cursor, uint32_t before, uint32_t base, chunks::Range* out, size_t max);
// Where the table is, for a reader outside the process
// (features/introspect.h): `*table` points at `*capacity` entries.
struct Layout {
    uintptr_t table, capacity;
    uint32_t stride, addr, size, site, epoch, freed;
};
Layout layout();
void lock_all();
void unlock_all(bool child);
bool lock_held();  // see SpinLock::is_locked

}  // namespace btm::large
