// The boot arena: a lock-free bump allocator in static storage for the rare
// calls that must not enter the allocator proper -- calls nested inside our
// own slow paths (pthread_setspecific, pthread_atfork, a signal handler that
// interrupts a slow path) and calls made while initialisation runs.
//
// It also serves a process's start-up phase (alloc.cpp: startup_alloc): the
// first small blocks of a process, packed like a bump heap, before any
// reservation, table or chunk exists.
//
// Invariant: arena blocks are never reused; free() recognises them, marks them
// free and otherwise ignores them, so they can never be handed out twice.
// Each block has a 16-byte header: its size and the call site that
// allocated it (0 if unknown), for realloc, malloc_usable_size and the
// double-free report.  The header sits right after the previous block, where
// an overflow of that block lands, so the size word also holds a check of
// the size, the site and the block's address under a per-process key: a
// header that fails it is reported (Header::kCorrupt), never trusted.  Whether a granule starts a block, and whether that
// block was freed, is kept in bitmaps outside the blocks: a free of a
// pointer that is not a block start writes nothing.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/site_tally.h"

namespace btm::boot {

// The arena's size, and the bytes at its end kept for nested calls when a
// process without a heap fills the rest (alloc.cpp: malloc_slow).  The
// start-up phase takes at most 512 KiB of it (knob startup_bytes).
inline constexpr size_t kBytes = 640 << 10;
inline constexpr size_t kNestedReserve = 16 << 10;

// Null if the block would end past `limit` bytes into the arena.
void* alloc(size_t n, size_t align, uintptr_t site = 0, size_t limit = SIZE_MAX);
size_t used();    // bytes handed out so far
size_t blocks();  // blocks handed out so far (for statistics: reads every mark)
// The bytes of the blocks not freed, each added to `t` (if not null) under
// its call site.  Reads every mark and header: for statistics.
uint64_t tally(SiteTally* t);
bool owns(const void* p);
// A block's header as read: kNotStart if p starts no block; kCorrupt if
// its check fails (`size` then is the raw size word, bounded by the arena).
struct Header {
    enum State { kOk, kNotStart, kCorrupt } state;
    size_t size;
    uint64_t word;  // the size word as found
};
Header header(const void* p);
// free() of a pointer the arena or a spill region owns: marks the block
// freed, and a spill block with `reuse` goes on its class's list to be
// handed out again (not from a call nested in a slow path, which may hold
// the spill lock).  A block whose header fails its check (kCorrupt) is not
// marked.
enum class Release { kOk, kDouble, kInvalid, kCorrupt };
Release release(void* p, bool reuse = false);
uintptr_t site(const void* p);

// Spill regions, for a process without a heap once the arena is full
// (alloc.cpp: malloc_slow): 64 KiB mappings carved like the arena, with the
// same headers and marks, so header(), release() and site() take their
// blocks too; unlike the arena's, freed blocks are reused.  Null for a
// request over 16 KiB or when no region can be mapped.  `fresh`: the block
// is zeros.
void* spill_alloc(size_t n, uintptr_t site, bool* fresh);
bool spilled(const void* p);  // inside a spill region (any address, not only block starts)
size_t spill_bytes();         // mapped for regions
void lock_spill();            // around fork
void unlock_spill(bool child);

// Where the arena's blocks, bump pointer and marks are, for a reader
// outside the process (features/introspect.h): marks of span s at
// marks[spans - 1 - s], a block's size word and site in the 16 bytes
// before it.
struct Layout {
    uintptr_t bytes, top, marks;
    uint32_t spans, span_bytes, granule, marks_stride;
};
Layout layout();

}  // namespace btm::boot
