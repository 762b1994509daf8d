#include "features/cold.h"

#include "core/chunk.h"
#include "core/globals.h"
#include "core/orphan.h"
#include "os/os.h"

namespace btm::cold {

size_t pageout(unsigned min_age) {
    if (!g.initialized || !g_heap_ok || orphaned()) return 0;
    // Stamps are whole seconds: a slab stamped s was last touched before
    // s + 1, so s < now - min_age means untouched for at least min_age
    // seconds.  min_age 0 takes every slab.
    chunks::start_clock();  // slabs stamped before count from now
    uint32_t now = os::coarse_seconds();
    uint32_t before = min_age ? now - min_age : now + 1;
    size_t total = 0;
    uint32_t cursor = 0;
    chunks::Range r[1024];
    for (;;) {
        size_t n = chunks::cold_ranges(&cursor, before, r, sizeof r / sizeof r[0]);
        for (size_t i = 0; i < n; ++i)
            if (os::page_out(reinterpret_cast<void*>(r[i].addr), r[i].len)) total += r[i].len;
        if (n == 0) break;
    }
    g_events.pageout_requests.fetch_add(1, std::memory_order_relaxed);
    g_events.pageout_bytes.fetch_add(total, std::memory_order_relaxed);
    return total;
}

}  // namespace btm::cold
