// The central pool of one (partition, size class) pair: the slabs it owns and
// the queue of its slabs that received remote frees.
//
// Invariants:
// - A slab is on at most one list: `partial` (has a free or never-used slot
//   and live slots), `empty` (no live slot; kept warm), or none (full).
// - Frees never take the lock: a thread cache flushes freed slots onto their
//   slab's lock-free remote list (one CAS per run of slots of the same slab),
//   and the first push to a slab queues the slab on its central's
//   `remote_q`.  Whoever next holds the central lock drains the queue in one
//   exchange.  So a slot always goes home to its own slab, whichever thread
//   frees it, and no arena ever changes owner.
#pragma once

#include <atomic>

#include "core/chunk.h"
#include "core/lock.h"

namespace btm {

struct alignas(64) Central {
    SpinLock lock;
    uint32_t nempty;
    Slab* partial;
    Slab* empty;
    std::atomic<Slab*> remote_q;
    uint64_t out_bytes;    // bytes of slots out of this pair's slabs
    uint64_t nslabs;
};

extern Central* g_central;  // indexed by bin index
extern uint32_t g_warm_slabs;

namespace central {

// Fills an empty bin with up to `want` slots and returns one more slot for
// the caller, or null when memory is exhausted.
void* refill(Bin* b, uint32_t bin, uint32_t cls, uint32_t want, uintptr_t ra);
// Leaves `keep` slots in the bin and sends the rest home.
void flush(Bin* b, uint32_t keep);
// One slot without a thread cache (threads being created or torn down).
void* alloc_one(uint32_t bin, uint32_t cls, uintptr_t ra);
// Sends one slot home without a thread cache.
void free_one(void* p, uint64_t entry);
// Drains every central's remote queue (memory return, statistics).
void drain_all();

}  // namespace central
}  // namespace btm
