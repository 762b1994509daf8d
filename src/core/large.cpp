// Invariant: `table` holds the live large blocks (address -> mapping size,
// call site, stamp of the allocation) and tombstones of freed ones (size |
// kFreed), at most one entry per address; freed blocks go to the cache
// (large_cache.h), whose ranges may later be split, grown or moved into
// other blocks.  Freeing a tombstone's address again is a double free if the
// address lies in a cached range or its pages are unmapped (if someone else
// mapped them since, or a block made of cached pages covers it, the pointer
// is foreign; misuse.cpp decides).  A tombstone lasts until its slot is
// reused or the table is rebuilt, so an old double free can pass as
// foreign.  The table is guarded by `lock`, taken before the cache's.
#include "core/large.h"

#include <cstring>

#include "core/chunk.h"
#include "core/large_cache.h"
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

inline constexpr size_t kFirstSlots = 128;

// What a process with a few large blocks touches of the table, on a page of
// its own: the first 128 slots.  The table used to start as a 16 KiB
// mapping: a system call, and two page faults on the page the first insert
// probed (a read maps the zero page, the write then copies it).
struct alignas(4096) FirstPage {
    Entry table[kFirstSlots];
};
static_assert(sizeof(FirstPage) == 4096, "the first slots fill one page");

SpinLock lock;
Entry* table;
size_t capacity;  // a power of two
size_t filled;    // live + deleted
size_t live;
uint64_t live_bytes;
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
    cache::note_live(live_bytes);
    return true;
}

// Turns a live entry into a tombstone.
void bury(Entry* e) {
    e->size |= kFreed;
    --live;
    live_bytes -= e->size & ~kFreed;
    cache::note_live(live_bytes);
}

size_t round_pages(size_t n) {
    size_t mask = g.page_mask;
    return (n + mask) & ~mask;
}

}  // namespace

void init(uint64_t cache_bytes) { cache::init(cache_bytes); }

void* alloc(size_t n, size_t align, bool zero, uintptr_t site) {
    size_t page = g.page_mask + 1;
    if (align < page) align = page;
    if (n > (size_t(1) << 62)) return nullptr;
    size_t size = round_pages(n ? n : 1);
    size_t got = size, dirty = 0;
    void* p = cache::take(size, align, &got, &dirty);
    if (!p && !(p = os::map_aligned(size, align))) return nullptr;
    {
        LockGuard guard(lock);
        if (!insert(reinterpret_cast<uintptr_t>(p), got, site)) {
            os::unmap(p, got);
            return nullptr;
        }
    }
    // Only the pages a previous owner may have written: the rest of a block
    // is fresh from the kernel, and clearing it would fault it in.
    if (zero && dirty) memset(p, 0, dirty);
    return p;
}

Free free(void* p, size_t* size_out, bool* cached) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    cache::Evicted ev{};
    {
        LockGuard guard(lock);
        Entry* e = find(a);
        if (!e) return Free::kNotOurs;
        size_t size = e->size & ~kFreed;
        *size_out = size;
        if (e->size & kFreed) {
            *cached = cache::contains(a);
            return Free::kFreedBefore;
        }
        bury(e);
        cache::put(a, size, &ev);
    }
    cache::unmap(ev);
    return Free::kFreed;
}

size_t usable(const void* p) {
    LockGuard guard(lock);
    Entry* e = find_live(reinterpret_cast<uintptr_t>(p));
    return e ? e->size : 0;
}

// Cold: only realloc_impl's cold path calls it, and the first 64 KiB of the
// library are for start-up code (tests/check_library.sh).
[[gnu::cold]] void* realloc(void* p, size_t n, uintptr_t site) {
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
        // Growing into the cached pages right behind the block (the rest of
        // the range it was carved from): no syscall, and no fault on pages a
        // freed block wrote.  A buffer appended to in small steps up to
        // 1 MiB, again and again, used to fault every page afresh.
        if (size > old) {
            if (size_t more = cache::extend(a + old, size - old)) {
                e->size = old + more;
                live_bytes += more;
                cache::note_live(live_bytes);
                return p;
            }
        }
        // Buried before the kernel moves the block: the moment mremap
        // returns, another thread may map the old address and record it,
        // and that entry must not be the one buried here.  No other thread
        // may legally touch the block during a realloc.
        bury(e);
    }
    size_t old = old_entry.size;
    void* q = os::remap(p, old, size);
    {
        LockGuard guard(lock);
        if (q) {
            insert(reinterpret_cast<uintptr_t>(q), size, site);
            return q;
        }
        insert(a, old, old_entry.site);  // still ours, unchanged (its tombstone is reused if still there)
    }
    // mremap grows one kernel mapping only, and a block made of cached
    // pieces can span several: copied instead.
    void* r = alloc(size, 0, false, site);
    if (!r) return nullptr;
    memcpy(r, p, old < size ? old : size);
    size_t freed_size;
    bool cached;
    free(p, &freed_size, &cached);
    return r;
}

size_t trim() { return cache::trim(); }

size_t decay() { return cache::decay(); }

Counters counters() {
    LockGuard guard(lock);
    return Counters{live_bytes, cache::bytes(), cache::released_bytes()};
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

uint64_t cached_bytes() { return cache::bytes(); }

void lock_all() {
    lock.lock();
    cache::lock();
}
bool lock_held() { return lock.is_locked() || cache::lock_held(); }
void unlock_all(bool child) {
    cache::unlock(child);
    if (child) lock.reset();
    else lock.unlock();
}

}  // namespace btm::large
