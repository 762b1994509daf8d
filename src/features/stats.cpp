#include "features/stats.h"

#include <unistd.h>

#include "core/boot.h"
#include "core/central.h"
#include "core/chunk.h"
#include "core/globals.h"
#include "core/large.h"
#include "core/orphan.h"
#include "core/partition.h"
#include "core/reclaim.h"
#include "core/thread_cache.h"
#include "features/report.h"
#include "os/os.h"

namespace btm::stats {

namespace {

// Live bytes per partition, from the centrals in use (untouched ones are 0).
void partition_bytes(uint64_t* out) {
    central::for_each_used([&](Central& c) { out[uint32_t(&c - g_central) >> kClassBits] += c.out_bytes; });
}

}  // namespace

void fill(struct btm_stats* s) {
    uint64_t version = s->version;
    *s = {};
    s->version = version;
    s->resident_bytes = os::resident_bytes();
    s->foreign_frees = g_events.foreign_frees.load(std::memory_order_relaxed);
    s->invalid_frees = g_events.invalid_frees.load(std::memory_order_relaxed);
    // Every block of the boot arena (the start-up phase's, and calls nested
    // in the allocator's slow paths) was a slow call.
    s->malloc_calls_slow = g_events.slow_mallocs.load(std::memory_order_relaxed) + boot::blocks();
    s->pageout_requests = g_events.pageout_requests.load(std::memory_order_relaxed);
    s->pageout_bytes = g_events.pageout_bytes.load(std::memory_order_relaxed);
    // The boot arena's blocks not freed: the start-up phase's, which stay
    // live after it, and those of calls nested in the allocator.
    s->allocated_bytes = boot::tally(nullptr);
    if (!g_heap_ok || orphaned()) {
        // Still in the start-up phase (or without a heap, or in a clone()
        // child that must not take the heap's locks): committed is what the
        // boot arena has handed out, which it never takes back.  Large
        // blocks have their own mappings from the first one on, so they
        // count here too (not in a clone() child, which must not take their
        // lock).
        s->committed_bytes = boot::used() + boot::spill_bytes();
        if (!orphaned()) {
            large::Counters lc = large::counters();
            s->large_bytes = lc.live_bytes;
            s->large_cached_bytes = lc.cached_bytes;
            s->allocated_bytes += lc.live_bytes;
        }
        return;
    }
    central::for_each_used([&](Central& c) { s->allocated_bytes += c.out_bytes; });
    large::Counters lc = large::counters();
    s->large_bytes = lc.live_bytes;
    s->large_cached_bytes = lc.cached_bytes;
    s->allocated_bytes += lc.live_bytes;
    chunks::Counters cc = chunks::counters();
    s->committed_bytes = cc.committed;
    s->reserved_bytes = cc.reserved;
    s->chunks = cc.chunks;
    s->slabs = cc.slabs;
    s->slabs_made = cc.made;
    s->kept_slab_bytes = g_kept_bytes.load(std::memory_order_relaxed);
    s->partitions = g.npart;
    s->thread_caches = tcache::live_caches();
    reclaim::Counters rc = reclaim::counters();
    s->released_bytes_sync = rc.released_sync;
    s->released_bytes_async = rc.released_async;
    s->dirty_bytes = cc.dirty;
    s->free_chunks = cc.free_chunks;
    s->reclaim_thread = rc.thread_running;
    s->reclaim_uring = rc.uring;
    s->prefault_bytes = rc.prefaulted;
}

namespace {

// The blocks outside the slabs by call site, after the partitions' lines:
// `kind` names where they are (the start-up arena, large blocks).
void site_lines(int fd, const char* kind, const SiteTally& t) {
    for (size_t i = 0; i <= t.n; ++i) {
        const SiteTotal& row = i < t.n ? t.rows[i] : t.other;
        if (!row.blocks) continue;
        report::Line line;
        line.str(kind).str(" ").dec(row.bytes).str(" ");
        if (i < t.n) line.site_with_build_id(row.site);
        else line.str("(other call sites)");
        line.emit(fd);
    }
}

}  // namespace

void profile(int fd) {
    report::Line head;
    struct btm_stats s {};
    s.version = BTM_STATS_VERSION;
    fill(&s);
    head.str("btmalloc heap profile: ")
        .dec(s.allocated_bytes)
        .str(" bytes allocated (")
        .dec(s.large_bytes)
        .str(" in large blocks), ")
        .dec(s.committed_bytes)
        .str(" committed, ")
        .dec(s.resident_bytes)
        .str(" resident, ")
        .dec(s.partitions)
        .str(" partitions");
    head.emit(fd);
    if (!g.initialized) return;
    bool heap = g_heap_ok && !orphaned();
    if (heap) {
        uint64_t hist[10] = {}, lists[4] = {};
        chunks::occupancy(hist, lists);
        report::Line occ;
        occ.str("slabs by occupancy (0-10% ... 90-100%):");
        for (uint64_t h : hist) occ.str(" ").dec(h);
        occ.str("; full ").dec(lists[kListNone]).str(", partial ").dec(lists[kListPartial]);
        occ.str(", sparse ").dec(lists[kListSparse]).str(", empty ").dec(lists[kListEmpty]);
        occ.emit(fd);
    }
    report::Line cols;
    cols.str("part   bytes_outstanding  call site (module+offset)  build-id  path");
    cols.emit(fd);
    if (heap) {
        uint64_t per_part[kMaxPartitions] = {};
        partition_bytes(per_part);
        for (uint32_t p = 0; p < g.npart; ++p) {
            uint64_t bytes = per_part[p];
            uintptr_t site = partition::g_site[p].load(std::memory_order_relaxed);
            if (!bytes && !site) continue;
            report::Line line;
            line.dec(p).str(" ").dec(bytes).str(" ").site_with_build_id(site);
            line.emit(fd);
        }
    }
    // Tallied first, printed after: printing reads /proc/self/maps, not
    // under the large-block lock.
    SiteTotal rows[128];
    SiteTally boot_sites{rows, 64}, large_sites{rows + 64, 64};
    boot::tally(&boot_sites);
    if (!orphaned()) large::tally(&large_sites);
    site_lines(fd, "start-up", boot_sites);
    site_lines(fd, "large", large_sites);
}

struct mallinfo2 mallinfo2() {
    struct btm_stats s {};
    s.version = BTM_STATS_VERSION;
    fill(&s);
    struct mallinfo2 m {};
    m.arena = s.committed_bytes;
    m.hblks = 0;
    m.hblkhd = s.large_bytes;
    m.uordblks = s.allocated_bytes;
    m.fordblks = s.committed_bytes > s.allocated_bytes - s.large_bytes ? s.committed_bytes - (s.allocated_bytes - s.large_bytes) : 0;
    m.keepcost = s.large_cached_bytes;
    return m;
}

int write_info(FILE* out) {
    struct btm_stats s {};
    s.version = BTM_STATS_VERSION;
    fill(&s);
    fprintf(out,
            "<malloc version=\"btmalloc-1\">\n"
            "<total type=\"allocated\" size=\"%llu\"/>\n"
            "<total type=\"committed\" size=\"%llu\"/>\n"
            "<total type=\"large\" size=\"%llu\"/>\n"
            "<total type=\"resident\" size=\"%llu\"/>\n"
            "</malloc>\n",
            (unsigned long long)s.allocated_bytes, (unsigned long long)s.committed_bytes,
            (unsigned long long)s.large_bytes, (unsigned long long)s.resident_bytes);
    return 0;
}

namespace {

// stats_at_exit: one line per process, so tests and administrators can see
// that a program really ran on btmalloc.
__attribute__((destructor)) void print_at_exit() {
    if (!g.initialized || !g_cfg.stats_at_exit) return;
    struct btm_stats s {};
    s.version = BTM_STATS_VERSION;
    fill(&s);
    report::Line line;
    line.str("btmalloc[")
        .dec(uint64_t(getpid()))
        .str("]: allocated=")
        .dec(s.allocated_bytes)
        .str(" committed=")
        .dec(s.committed_bytes)
        .str(" chunks=")
        .dec(s.chunks)
        .str(" slabs=")
        .dec(s.slabs)
        .str(" slabs_made=")
        .dec(s.slabs_made)
        .str(" large=")
        .dec(s.large_bytes)
        .str(" thread_caches=")
        .dec(s.thread_caches)
        .str(" slow_mallocs=")
        .dec(s.malloc_calls_slow)
        .str(" foreign_frees=")
        .dec(s.foreign_frees)
        .str(" invalid_frees=")
        .dec(s.invalid_frees)
        .str(" dirty=")
        .dec(s.dirty_bytes)
        .str(" released_sync=")
        .dec(s.released_bytes_sync)
        .str(" released_async=")
        .dec(s.released_bytes_async)
        .str(" reclaim_thread=")
        .dec(s.reclaim_thread)
        .str(" rss=")
        .dec(s.resident_bytes);
    line.emit(2);
}

}  // namespace
}  // namespace btm::stats
