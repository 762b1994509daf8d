// Reports of misuse and corrupted heap metadata, each ending the process.
// Out of the way of the code every process runs (CMakeLists.txt links this
// file last): a process that never misuses the heap never faults it in.
#include "core/alloc.h"
#include "core/boot.h"
#include "core/central.h"
#include "core/chunk.h"
#include "core/partition.h"
#include "features/report.h"
#include "os/syscall.h"

namespace btm {

namespace {

// The call site that most likely allocated p: exact in intern mode while
// partitions last (one site each); otherwise the site whose refill last took
// slots from p's slab, exact for a site's first allocations.
uintptr_t alloc_site(void* p, uint64_t entry) {
    if (g.intern) return partition::g_site[pe_bin(entry) >> kClassBits].load(std::memory_order_relaxed);
    uintptr_t site = slab_of(reinterpret_cast<uintptr_t>(p), entry)->site;
    return site ? site : partition::g_site[pe_bin(entry) >> kClassBits].load(std::memory_order_relaxed);
}

}  // namespace

void double_free(void* p, uint64_t entry, uintptr_t ra) {
    report::Line line;
    line.str("btmalloc: double free of ")
        .hex(reinterpret_cast<uintptr_t>(p))
        .str(" (size class ")
        .dec(kClassSize[pe_class(entry)])
        .str(") in free() called from ")
        .site(ra)
        .str("; allocated from call site ")
        .site(alloc_site(p, entry));
    // Hash mode puts several call sites in one partition, and a block may
    // come from a bin another site refilled: the site is then only likely.
    uint32_t part = pe_bin(entry) >> kClassBits;
    if (!g.intern || partition::g_shared[part].load(std::memory_order_relaxed))
        line.str(" (likely: call sites share partition ")
            .dec(part)
            .str("; BTM_PARTITION_MODE=intern names the site exactly)");
    report::fatal(line);
}

void large_freed_before(void* p, size_t size, bool cached, uintptr_t ra) {
    unsigned char vec;
    if (!cached && sys::mincore(p, 1, &vec) != -ENOMEM) return;  // mapped again, not by us
    report::Line line;
    line.str("btmalloc: double free of ")
        .hex(reinterpret_cast<uintptr_t>(p))
        .str(" (a large block of ")
        .dec(size)
        .str(" bytes) in free() called from ")
        .site(ra);
    report::fatal(line);
}

void corrupted_boot_header(const void* p, const char* fn, uintptr_t ra) {
    report::Line line;
    line.str("btmalloc: corrupted header of the start-up block ")
        .hex(reinterpret_cast<uintptr_t>(p))
        .str(" (size word ")
        .hex(boot::header(p).word)
        .str(") in ")
        .str(fn)
        .str(" called from ")
        .site(ra)
        .str(" (a buffer overflow of the block before it)");
    report::fatal(line);
}

void double_free_boot(void* p, uintptr_t ra) {
    report::Line line;
    line.str("btmalloc: double free of ")
        .hex(reinterpret_cast<uintptr_t>(p))
        .str(" (a start-up block of ")
        .dec(boot::header(p).size)
        .str(" bytes) in free() called from ")
        .site(ra)
        .str("; allocated from call site ")
        .site(boot::site(p));
    report::fatal(line);
}

void corrupted_free_list(void* p, void* next, uintptr_t ra) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uint64_t e = chunk_of(a)->pagemap[(a & kChunkMask) >> g.page_shift];
    report::Line line;
    line.str("btmalloc: corrupted free list: the free slot ")
        .hex(a)
        .str(" (size class ")
        .dec(kClassSize[pe_class(e)])
        .str(") links to ")
        .hex(reinterpret_cast<uintptr_t>(next))
        .str(", not a free slot of its slab, found by malloc() called from ")
        .site(ra)
        .str(" (a write after free or a buffer overflow)");
    report::fatal(line);
}

}  // namespace btm
