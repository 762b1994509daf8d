// The central pool of one (partition, size class) pair: the slabs it owns and
// the queue of its slabs that received remote frees.
//
// Invariants:
// - A slab is on at most one list: `partial` (has a free or never-used slot
//   and more than a quarter of its slots live), `sparse` (has a free slot, a
//   quarter or fewer live), `empty` (no live slot; kept warm), or none (full).
//   Refills take from partial slabs (the fullest of the first few), then
//   from the sparse slab that has been sparse longest, then from empty or
//   new slabs, so allocations concentrate on full slabs and the sparse ones
//   get time to drain to empty and go back (lifetime cohorting).
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

// One cache line: a refill or flush touches one line of its central, and a
// small process's first-partition centrals (64 of them) fill one page.
struct alignas(64) Central {
    SpinLock lock;
    std::atomic<bool> registered;  // in g_used (see central::use)
    uint16_t nempty;       // on `empty`: warm and kept ones
    uint32_t nslabs;
    Slab* partial;
    Slab* sparse;          // oldest first
    Slab* sparse_tail;
    Slab* empty;
    std::atomic<Slab*> remote_q;
    uint64_t out_bytes;    // bytes of slots out of this pair's slabs
    // Refills so far (mod 2^16), at the last aging tick and at the last
    // flush: only compared for equality (no refill since), where a
    // wrap-around costs at most a misjudged trim.
    uint16_t refills;
    uint16_t refills_seen;     // a pair with no refill in a tick keeps no warm slabs
    uint16_t refills_at_flush; // none since the last flush means shrinking
    // The fewest slabs on `empty` since the last aging tick: that many at its
    // tail sat unused through the interval (drain_all gives them back).
    uint16_t empty_low;
};
static_assert(sizeof(Central) == 64);

extern Central* g_central;  // indexed by bin index
// The size class of a central, from its place in the array (touching only
// the centrals a process uses keeps start-up to a few page faults).
BTM_INLINE uint32_t class_of_central(const Central& c) {
    return uint32_t(&c - g_central) & ((1u << kClassBits) - 1);
}
// Bytes of slabs queued for a remote drain since the last aging tick: frees
// the background work has to look at even if nobody allocates again.
extern std::atomic<uint64_t> g_remote_queued_bytes;
// Bytes of empty slabs kept on the centrals' `empty` lists beyond the warm
// ones, waiting for the pair's next growth or for the aging ticks.
extern std::atomic<uint64_t> g_kept_bytes;
extern uint32_t g_warm_slabs;

// A slab's free list links from p to next, which is not a free slot of that
// slab: reports the malloc (called from ra) whose refill found it, and ends
// the process (misuse.cpp).
[[noreturn]] void corrupted_free_list(void* p, void* next, uintptr_t ra);

namespace central {

// Centrals a process has used: a bit per bin, a word per partition (kept
// with the partition tables, on the page a small process touches for those).
// fork() and the aging tick visit only these, in bin order: a process
// touches the few pages of the centrals it uses, never the whole array
// (whose untouched pages a fork would otherwise fault in and copy).  A
// central is registered before its lock is first taken.
void use(Central& c);
// Calls fn(central) for every registered central.
template <class Fn>
void for_each_used(Fn fn);
void lock_registry();
void unlock_registry(bool child);
// The registry's or a used pair's lock is held (see SpinLock::is_locked).
bool lock_held();

// Fills an empty bin with up to `want` slots and returns one more slot for
// the caller, or null when memory is exhausted.  With an empty `run`, a slab
// whose never-used slots read as zeros becomes the run instead of being
// carved into the bin; then the result may be null with the run filled.
void* refill(Bin* b, uint32_t bin, uint32_t cls, uint32_t want, uintptr_t ra, FreshRun* run);
// Gives the unused slots of a thread's fresh run back to their slab.
void return_run(uint32_t bin, FreshRun* run);
// Leaves `keep` slots in the bin and sends the rest home: straight into
// their slabs under the pair's lock when it is free, else onto the slabs'
// lock-free remote lists.
// Returns true when the pair is shrinking: nobody refilled from it since the
// previous flush and most of the slots sent home landed in slabs now at most a
// quarter full, so caching its slots would only keep those slabs from
// emptying.  Then the bin's kept slots go home too: a bin that goes idle
// after a shrink (its thread sleeps) would otherwise pin their slabs for
// good.  (Slots coming home to be reused at once, as between a producer and
// a consumer thread, are not that.)
bool flush(Bin* b, uint32_t bin, uint32_t keep);
// Frees one slot of a draining slab (or any slot, without a thread cache):
// into its slab under the pair's lock when free, else onto the remote list.
void free_home(void* p, uint64_t entry);
// One slot without a thread cache (threads being created or torn down).
void* alloc_one(uint32_t bin, uint32_t cls, uintptr_t ra);
// Drains every central's remote queue, and gives the warm empty slabs back
// to the page heap: all of them with `all` (malloc_trim), else those of pairs
// that had no refill since the last call.
void drain_all(bool all);

// Mesh compaction (features/mesh.h), all with c.lock held.  Drains the
// pair's remote frees and lists up to `max` of its slabs that have both
// live and free slots (partial and sparse ones).
uint32_t mesh_candidates(Central& c, Slab** out, uint32_t max);
// A source meshed away: off its list, no longer the pair's.
void mesh_retire(Central& c, Slab* s);
// A target whose slots changed: onto the list its state calls for.
void mesh_settle(Central& c, Slab* t);

extern std::atomic<uint64_t>* g_used;  // g.npart words
static_assert(kClassBits == 6, "one word of g_used per partition");

template <class Fn>
void for_each_used(Fn fn) {
    uint32_t words = g_used ? g.npart : 0;  // none before init maps them
    for (uint32_t w = 0; w < words; ++w)
        for (uint64_t bits = g_used[w].load(std::memory_order_acquire); bits; bits &= bits - 1)
            fn(g_central[(w << kClassBits) | unsigned(__builtin_ctzll(bits))]);
}

}  // namespace central
}  // namespace btm
