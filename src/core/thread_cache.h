// Thread caches: per thread, one bin per (partition, size class), indexed
// directly by the bin index; the hit path touches only the bin.
//
// Invariants:
// - t_state.tc is the placeholder (all bins empty, max 0) until the thread's
//   cache exists and after it is torn down, so both fast paths fall into the
//   slow path there.
// - The bytes a thread keeps cached are bounded in total (knob tcache_bytes):
//   each bin holds at most 2 batches (a hot bin of a class above 1 KiB up
//   to 256 KiB, those extras bounded by half the budget), and after every
//   kScavengePeriod slow-path events the next free's slow path (a malloc's,
//   for a thread that stopped freeing) counts its active bins and trims them
//   when over the thread's budget, which starts at 1 MiB and grows towards
//   the knob while the cache thrashes (thread_cache.cpp, scavenge).
#pragma once

#include "core/state.h"

namespace btm::tcache {

// Creates the calling thread's cache; false if it cannot (then the caller
// serves the request without one).
bool thread_start();
// Slow path of malloc for a small class: refills the bin (creating the cache
// first if needed) and returns a slot, or null (out of memory, or the refill
// filled the bin's fresh run instead: see run_pop).
void* refill(uint32_t bin, uint32_t cls, uintptr_t ra);
// The next slot of the bin's fresh run (see FreshRun), or null: no lock, and
// no write to it.  `first`: the refill that made the run comes right before,
// so a one-page run's page is not resident yet and nothing is carved.
void* run_pop(uint32_t bin, bool first);
// Slow path of free when the bin is full, unused so far, or missing.
void free_slow(void* p, uint64_t entry);
// Returns every cached slot of the calling thread (malloc_trim, thread exit;
// both leave an orphaned process alone first: orphan.h).
void flush_all();
uint64_t live_caches();

// Makes the placeholder (the empty cache of a thread without one) cover
// `npart` partitions' bins; returns npart, or the partitions it covers if it
// cannot grow (with a warning).  Once, at init, before other threads exist.
uint32_t prepare_placeholder(uint32_t npart);
// Bytes of one thread's cache.  init() is given that much memory for the
// first thread's cache (inside the process-wide tables' mapping, so a
// single-threaded process makes no mapping of its own for it), or null.
size_t cache_bytes();
void init(uint64_t tcache_bytes, void* first_cache);
void fork_prepare();
void fork_parent();
void fork_child();
bool lock_held();  // see SpinLock::is_locked

}  // namespace btm::tcache
