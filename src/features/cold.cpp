#include "features/cold.h"

#include "core/chunk.h"
#include "core/globals.h"
#include "core/large.h"
#include "core/orphan.h"
#include "os/os.h"

namespace btm::cold {

size_t pageout(unsigned min_age) {
    // Large blocks exist from the start-up phase on, slabs once the heap
    // does; a clone() child must take neither's lock.
    if (!g.initialized || orphaned()) return 0;
    // Stamps are whole seconds: a slab stamped s was last touched before
    // s + 1, so s < now - min_age means untouched for at least min_age
    // seconds.  min_age 0 takes every slab.
    chunks::start_clock();  // slabs stamped before count from now
    uint32_t now = os::coarse_seconds();
    uint32_t before = min_age ? now - min_age : now + 1;
    uint32_t base = chunks::clock_base.load(std::memory_order_relaxed);
    size_t total = 0;
    chunks::Range r[1024];
    auto submit = [&](size_t n) {
        for (size_t i = 0; i < n; ++i)
            if (os::page_out(reinterpret_cast<void*>(r[i].addr), r[i].len)) total += r[i].len;
        return n;
    };
    uint32_t cursor = 0;
    while (g_heap_ok && submit(chunks::cold_ranges(&cursor, before, r, sizeof r / sizeof r[0]))) {
    }
    // A large block is as old as its allocation (or its move by realloc):
    // like a slab, stamped on a slow path only.
    size_t slot = 0;
    while (submit(large::cold_ranges(&slot, before, base, r, sizeof r / sizeof r[0]))) {
    }
    g_events.pageout_requests.fetch_add(1, std::memory_order_relaxed);
    g_events.pageout_bytes.fetch_add(total, std::memory_order_relaxed);
    return total;
}

}  // namespace btm::cold
