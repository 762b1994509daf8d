// The cache of freed large blocks (issue 21): ranges of address space whose
// pages the program freed, kept mapped for the next large request, sized by
// the program's own recent demand and given back by a decay in seconds.
//
// A request is served from one cached range (best fit; the rest of a larger
// range stays cached) or, when none is big enough, from several: the largest
// is grown with mremap and the others' pages are moved in behind it, so a
// program that frees and allocates large blocks of changing sizes reuses
// its pages instead of faulting fresh ones.  Each range knows how far from
// its start its pages may hold data (`dirty`); beyond that they are fresh
// from the kernel, so calloc clears only the dirty prefix.
//
// Capacity: cached bytes stay at most the recent peak of live large bytes
// minus the live ones now (and at most knob large_cache), the peak being the
// highest live figure over the last two epochs of kEpochSeconds; an idle
// process's peak falls to its live bytes within two epochs and the cache
// empties.  The epochs roll on frees and on decay(), which the reclaim ticks
// call (the background thread's, or inline ones without it).  Nothing is
// cached until a large allocation has followed a large free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::large::cache {

void init(uint64_t cap_bytes);
// The live large bytes, after every change (the table's lock held).
void note_live(uint64_t live);

// A block of `size` bytes (a page multiple) aligned to `align` (a power of
// two >= the page size) made of cached pages, or null; *got is its size
// (>= size), *dirty the bytes from its start that may not read as zero.
void* take(size_t size, size_t align, size_t* got, size_t* dirty);

// Grows a block ending at `end` by at least `size` bytes (a page multiple)
// of the cached range that starts there, if there is one that big: the rest
// of a range a block was carved from.  Returns the bytes taken (all of the
// range when less than kSplitMin would stay), or 0.
size_t extend(uintptr_t end, size_t size);

// Ranges whose pages are to be unmapped once no lock is held.
struct Evicted {
    static constexpr unsigned kMax = 16;
    uintptr_t addr[kMax];
    size_t size[kMax];
    unsigned n;
};
// Keeps freed block [a, a+size) (any byte of it may be written) when the
// capacity allows, else lists it (or older ranges) in *out; call with the
// table's lock held, so that a second free of a finds it cached.
void put(uintptr_t a, size_t size, Evicted* out);
void unmap(const Evicted& e);
// Whether address a lies in a cached range.
bool contains(uintptr_t a);

// Gives back what the capacity no longer allows; returns the bytes unmapped.
size_t decay();
// Unmaps every cached range; returns the bytes unmapped.
size_t trim();

uint64_t bytes();           // cached now (a relaxed read, no lock)
uint64_t released_bytes();  // unmapped by eviction, decay and trim
void lock();
void unlock(bool child);
bool lock_held();

}  // namespace btm::large::cache
