// Invariant: `table` holds the live large blocks (address -> mapping size,
// call site, stamp of the allocation) and tombstones of freed ones (size |
// kFreed), at most one entry per address; a cached block is in `cache` and
// has a tombstone.  Freeing a
// tombstone's address again is a double free if the block is cached or its
// pages are unmapped (if someone else mapped them since, the pointer is
// theirs: foreign; misuse.cpp decides).  A tombstone lasts until its slot is reused or the
// table is rebuilt, so an old double free can pass as foreign.  Both are
// guarded by `lock`.
#include "core/large.h"

#include <cstring>

#include "core/chunk.h"
#include "core/lock.h"
#include "core/state.h"
#include "os/os.h"

namespace btm::large {
namespace {

// free() reads `addr` alone (and `size` on a hit): the rest rides along on
// the same cache line, for the profile and cold tiering.
struct Entry {
    uintptr_t addr;  // 0 = empty
    size_t size;     // a multiple of the page size, | kFreed for a tombstone
    uintptr_t site;  // return address of the allocating call, 0 = unknown
    uint32_t epoch;  // chunks::stamp() at allocation
};
inline constexpr size_t kFreed = 1;

struct Cached {
    uintptr_t addr;
    size_t size;
};

inline constexpr unsigned kCacheSlots = 32;
inline constexpr size_t kFirstSlots = 64;

// What a process with a few large blocks touches of this file, on one page
// of its own: the cache and the table's first 64 slots.  The table used to
// start as a 16 KiB mapping: a system call, and two page faults on the page
// the first insert probed (a read maps the zero page, the write then copies
// it); `sort` of a small file paid both, and a third for sharing the cache's
// page with the thread cache placeholder, which every process reads.
struct alignas(4096) FirstPage {
    Cached cache[kCacheSlots];
    Entry table[kFirstSlots];
};
static_assert(sizeof(FirstPage) == 4096, "the cache and the first slots on one page");

SpinLock lock;
Entry* table;
size_t capacity;  // a power of two
size_t filled;    // live + deleted
size_t live;
uint64_t live_bytes, cached_bytes, released_bytes, cache_budget;
BTM_COLD_BSS FirstPage first;  // touched only by processes with large blocks

size_t slot_of(uintptr_t a) { return size_t((a >> 12) * 0x9E3779B97F4A7C15ULL >> 20) & (capacity - 1); }

// The entry of a (live or tombstone), or null.
Entry* find(uintptr_t a) {
    if (!table) return nullptr;
    for (size_t i = slot_of(a);; i = (i + 1) & (capacity - 1)) {
        if (table[i].addr == a) return &table[i];
        if (table[i].addr == 0) return nullptr;
    }
}

Entry* find_live(uintptr_t a) {
    Entry* e = find(a);
    return e && !(e->size & kFreed) ? e : nullptr;
}

bool grow() {
    if (!table) {
        // Written before it is read: one page fault, not two (above).
        *static_cast<volatile uintptr_t*>(&first.table[0].addr) = 0;
        table = first.table;
        capacity = kFirstSlots;
        return true;
    }
    size_t ncap = capacity * 2;
    if (live * 4 < capacity) ncap = capacity;  // mostly tombstones: rehash in place size
    auto* nt = static_cast<Entry*>(os::map(ncap * sizeof(Entry)));
    if (!nt) return false;
    Entry* old = table;
    size_t ocap = capacity;
    table = nt;
    capacity = ncap;
    filled = live;
    for (size_t i = 0; i < ocap; ++i) {
        if (!old[i].addr || (old[i].size & kFreed)) continue;
        size_t j = slot_of(old[i].addr);
        while (table[j].addr) j = (j + 1) & (capacity - 1);
        table[j] = old[i];
    }
    if (old != first.table) os::unmap(old, ocap * sizeof(Entry));
    return true;
}

// A's own tombstone if it has one (one entry per address), else the first
// tombstone or empty slot of its chain.
bool insert(uintptr_t a, size_t size, uintptr_t site) {
    if ((filled + 1) * 2 > capacity && !grow()) return false;
    Entry* e = find(a);
    if (!e) {
        size_t i = slot_of(a);
        while (table[i].addr && !(table[i].size & kFreed)) i = (i + 1) & (capacity - 1);
        e = &table[i];
        if (e->addr == 0) ++filled;
    }
    *e = Entry{a, size, site, chunks::stamp()};
    ++live;
    live_bytes += size;
    return true;
}

// Turns a live entry into a tombstone.
void bury(Entry* e) {
    e->size |= kFreed;
    --live;
    live_bytes -= e->size & ~kFreed;
}

bool is_cached(uintptr_t a) {
    for (const Cached& c : first.cache)
        if (c.addr == a) return true;
    return false;
}

size_t round_pages(size_t n) {
    size_t mask = g.page_mask;
    return (n + mask) & ~mask;
}

// Takes a cached block of size in [need, need + need/4] with the alignment.
void* cache_take(size_t need, size_t align, size_t* got) {
    if (!table) return nullptr;  // no block yet, none cached: leave the page to grow()'s write
    int best = -1;
    for (unsigned i = 0; i < kCacheSlots; ++i) {
        const Cached& c = first.cache[i];
        if (!c.addr || c.size < need || c.size > need + need / 4) continue;
        if (c.addr & (align - 1)) continue;
        if (best < 0 || c.size < first.cache[best].size) best = int(i);
    }
    if (best < 0) return nullptr;
    void* p = reinterpret_cast<void*>(first.cache[best].addr);
    *got = first.cache[best].size;
    cached_bytes -= first.cache[best].size;
    first.cache[best] = Cached{};
    return p;
}

// Keeps a freed block for reuse when the budget allows, evicting the largest
// cached blocks first.  Returns false if the caller must unmap it.
bool cache_put(uintptr_t a, size_t size) {
    if (size > cache_budget) return false;
    while (cached_bytes + size > cache_budget) {
        unsigned big = 0;
        for (unsigned i = 1; i < kCacheSlots; ++i)
            if (first.cache[i].size > first.cache[big].size) big = i;
        os::unmap(reinterpret_cast<void*>(first.cache[big].addr), first.cache[big].size);
        released_bytes += first.cache[big].size;
        cached_bytes -= first.cache[big].size;
        first.cache[big] = Cached{};
    }
    for (unsigned i = 0; i < kCacheSlots; ++i) {
        if (first.cache[i].addr) continue;
        first.cache[i] = Cached{a, size};
        cached_bytes += size;
        return true;
    }
    return false;
}

}  // namespace

void init(uint64_t cache_bytes) { cache_budget = cache_bytes; }

void* alloc(size_t n, size_t align, bool zero, uintptr_t site) {
    size_t page = g.page_mask + 1;
    if (align < page) align = page;
    if (n > (size_t(1) << 62)) return nullptr;
    size_t size = round_pages(n ? n : 1);
    void* p = nullptr;
    size_t got = size;
    {
        LockGuard guard(lock);
        p = cache_take(size, align, &got);
        if (p && !insert(reinterpret_cast<uintptr_t>(p), got, site)) {
            cache_put(reinterpret_cast<uintptr_t>(p), got);
            return nullptr;
        }
    }
    if (p) {
        if (zero) memset(p, 0, got);
        return p;
    }
    p = os::map_aligned(size, align);
    if (!p) return nullptr;
    LockGuard guard(lock);
    if (!insert(reinterpret_cast<uintptr_t>(p), size, site)) {
        os::unmap(p, size);
        return nullptr;
    }
    return p;
}

Free free(void* p, size_t* size_out, bool* cached) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    size_t size;
    {
        LockGuard guard(lock);
        Entry* e = find(a);
        if (!e) return Free::kNotOurs;
        size = e->size & ~kFreed;
        *size_out = size;
        if (e->size & kFreed) {
            *cached = is_cached(a);
            return Free::kFreedBefore;
        }
        bury(e);
        if (cache_put(a, size)) return Free::kFreed;
        released_bytes += size;
    }
    os::unmap(p, size);
    return Free::kFreed;
}

size_t usable(const void* p) {
    LockGuard guard(lock);
    Entry* e = find_live(reinterpret_cast<uintptr_t>(p));
    return e ? e->size : 0;
}

void* realloc(void* p, size_t n, uintptr_t site) {
    if (n > (size_t(1) << 62)) return nullptr;
    size_t size = round_pages(n ? n : 1);
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    Entry old_entry;
    {
        LockGuard guard(lock);
        Entry* e = find_live(a);
        if (!e) return nullptr;
        old_entry = *e;
        size_t old = e->size;
        // Shrinking by less than half keeps the block: no copy, no syscall.
        if (size <= old && size >= old / 2) return p;
        // Buried before the kernel moves the block: the moment mremap
        // returns, another thread may map the old address and record it,
        // and that entry must not be the one buried here.  No other thread
        // may legally touch the block during a realloc.
        bury(e);
    }
    void* q = os::remap(p, old_entry.size, size);
    LockGuard guard(lock);
    if (!q) {
        insert(a, old_entry.size, old_entry.site);  // still ours, unchanged (its tombstone is reused if still there)
        return nullptr;
    }
    insert(reinterpret_cast<uintptr_t>(q), size, site);
    return q;
}

size_t trim() {
    LockGuard guard(lock);
    size_t total = 0;
    for (auto& c : first.cache) {
        if (!c.addr) continue;
        os::unmap(reinterpret_cast<void*>(c.addr), c.size);
        total += c.size;
        c = Cached{};
    }
    cached_bytes = 0;
    released_bytes += total;
    return total;
}

Counters counters() {
    LockGuard guard(lock);
    return Counters{live_bytes, cached_bytes, released_bytes};
}

// The walks below serve the report and btm_pageout_cold, never a malloc:
// cold, out of the first 64 KiB window (tests/check_library.sh).
[[gnu::cold]] uint64_t tally(SiteTally* t) {
    LockGuard guard(lock);
    for (size_t i = 0; table && i < capacity; ++i)
        if (table[i].addr && !(table[i].size & kFreed)) t->add(table[i].site, table[i].size);
    return live_bytes;
}

[[gnu::cold]] size_t cold_ranges(size_t* cursor, uint32_t before, uint32_t base, chunks::Range* out, size_t max) {
    LockGuard guard(lock);
    size_t n = 0;
    for (; table && *cursor < capacity && n < max; ++*cursor) {
        const Entry& e = table[*cursor];
        if (!e.addr || (e.size & kFreed) || int32_t(before - (e.epoch ? e.epoch : base)) <= 0) continue;
        out[n++] = chunks::Range{e.addr, e.size};
    }
    return n;
}

Layout layout() {
    return {reinterpret_cast<uintptr_t>(&table), reinterpret_cast<uintptr_t>(&capacity), uint32_t(sizeof(Entry)),
            uint32_t(offsetof(Entry, addr)), uint32_t(offsetof(Entry, size)), uint32_t(offsetof(Entry, site)),
            uint32_t(offsetof(Entry, epoch)), uint32_t(kFreed)};
}

void lock_all() { lock.lock(); }
bool lock_held() { return lock.is_locked(); }
void unlock_all(bool child) {
    if (child) lock.reset();
    else lock.unlock();
}

}  // namespace btm::large
