// Memory return: aging ticks that give free pages back to the kernel with
// hysteresis, run by a background thread (batched through io_uring) or
// inline on allocation slow paths (knob async = off, or no thread/ring).
//
// Invariants: a page is released only after it stayed free through a whole
// tick interval (or on malloc_trim, or while free pages exceed the dirty
// budget: then the thread is woken and freeing threads help, one batch per
// slow path), and only while it is out of the page
// heap's free set (chunks::collect), so no slot can live on it.  The thread
// starts only once the process has memory to give back, blocks every signal,
// never allocates through the heap (its depth is always > 0), and is not
// waited for at exit.  After fork the child starts its own when needed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::reclaim {

// `under_filter`: keep the thread and the ring even under a seccomp filter.
void init(bool async, bool under_filter, uint32_t warm_chunks);
// At the end of slow paths, outside every lock: starts the thread or runs a
// due synchronous tick.  `freeing`: a free's slow path, which also helps
// release what is over the dirty budget during a mass free: a run of free
// slow paths with no malloc slow path (a malloc never does: its latency is
// what programs wait on, and a program still allocating would fault the
// pages back in).
void poll(bool freeing = false);
// Whether emptied slabs may be kept for the next growth: the background
// thread runs (its ticks age them, even in a process that went idle; inline
// ticks need slow paths to run) and no mass free is under way (a run of free
// slow paths with no malloc slow path, see poll: demand gone).
bool keeps_slabs();
// Wakes the background thread now (async-signal-safe).
void wake();
// Releases everything free now; returns the bytes released.
size_t trim_all();

struct Counters {
    uint64_t released_sync, released_async, ticks;
    bool thread_running, uring;
    uint64_t prefaulted;
};
Counters counters();

// Run by the background thread after each aging tick when set (mesh
// compaction's background pass, features/mesh.h).
extern void (*background_hook)();

void fork_prepare();
void fork_parent();
void fork_child();
bool lock_held();  // see SpinLock::is_locked

}  // namespace btm::reclaim
