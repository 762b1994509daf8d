// Invariant: `table` holds exactly the live large blocks (address -> mapping
// size); a cached block is in `cache`, not in the table, so freeing it again
// is a foreign free.  Both are guarded by `lock`.
#include "core/large.h"

#include <cstring>

#include "core/lock.h"
#include "core/state.h"
#include "os/os.h"

namespace btm::large {
namespace {

struct Entry {
    uintptr_t addr;  // 0 = empty, 1 = deleted
    size_t size;
};

struct Cached {
    uintptr_t addr;
    size_t size;
};

inline constexpr unsigned kCacheSlots = 32;
inline constexpr size_t kFirstSlots = 128;

// What a process with a few large blocks touches of this file, on one page
// of its own: the cache and the table's first 128 slots.  The table used to
// start as a 16 KiB mapping: a system call, and two page faults on the page
// the first insert probed (a read maps the zero page, the write then copies
// it); `sort` of a small file paid both, and a third for sharing the cache's
// page with the thread cache placeholder, which every process reads.
struct alignas(4096) FirstPage {
    Cached cache[kCacheSlots];
    Entry table[kFirstSlots];
};

SpinLock lock;
Entry* table;
size_t capacity;  // a power of two
size_t filled;    // live + deleted
size_t live;
uint64_t live_bytes, cached_bytes, released_bytes, cache_budget;
BTM_COLD_BSS FirstPage first;  // touched only by processes with large blocks

size_t slot_of(uintptr_t a) { return size_t((a >> 12) * 0x9E3779B97F4A7C15ULL >> 20) & (capacity - 1); }

Entry* find(uintptr_t a) {
    if (!table) return nullptr;
    for (size_t i = slot_of(a);; i = (i + 1) & (capacity - 1)) {
        if (table[i].addr == a) return &table[i];
        if (table[i].addr == 0) return nullptr;
    }
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
    if (live * 4 < capacity) ncap = capacity;  // mostly deleted: rehash in place size
    auto* nt = static_cast<Entry*>(os::map(ncap * sizeof(Entry)));
    if (!nt) return false;
    Entry* old = table;
    size_t ocap = capacity;
    table = nt;
    capacity = ncap;
    filled = live;
    for (size_t i = 0; i < ocap; ++i) {
        if (old[i].addr <= 1) continue;
        size_t j = slot_of(old[i].addr);
        while (table[j].addr) j = (j + 1) & (capacity - 1);
        table[j] = old[i];
    }
    if (old != first.table) os::unmap(old, ocap * sizeof(Entry));
    return true;
}

bool insert(uintptr_t a, size_t size) {
    if ((filled + 1) * 2 > capacity && !grow()) return false;
    size_t i = slot_of(a);
    while (table[i].addr > 1) i = (i + 1) & (capacity - 1);
    if (table[i].addr == 0) ++filled;
    table[i] = Entry{a, size};
    ++live;
    live_bytes += size;
    return true;
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

void* alloc(size_t n, size_t align, bool zero) {
    size_t page = g.page_mask + 1;
    if (align < page) align = page;
    if (n > (size_t(1) << 62)) return nullptr;
    size_t size = round_pages(n ? n : 1);
    void* p = nullptr;
    size_t got = size;
    {
        LockGuard guard(lock);
        p = cache_take(size, align, &got);
        if (p && !insert(reinterpret_cast<uintptr_t>(p), got)) {
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
    if (!insert(reinterpret_cast<uintptr_t>(p), size)) {
        os::unmap(p, size);
        return nullptr;
    }
    return p;
}

bool free(void* p) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    size_t size;
    {
        LockGuard guard(lock);
        Entry* e = find(a);
        if (!e) return false;
        size = e->size;
        e->addr = 1;
        --live;
        live_bytes -= size;
        if (cache_put(a, size)) return true;
        released_bytes += size;
    }
    os::unmap(p, size);
    return true;
}

size_t usable(const void* p) {
    LockGuard guard(lock);
    Entry* e = find(reinterpret_cast<uintptr_t>(p));
    return e ? e->size : 0;
}

void* realloc(void* p, size_t n) {
    if (n > (size_t(1) << 62)) return nullptr;
    size_t size = round_pages(n ? n : 1);
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    size_t old;
    {
        LockGuard guard(lock);
        Entry* e = find(a);
        if (!e) return nullptr;
        old = e->size;
        // Shrinking by less than half keeps the block: no copy, no syscall.
        if (size <= old && size >= old / 2) return p;
    }
    // The block stays registered while the kernel moves it; no other thread
    // may legally touch it during a realloc.
    void* q = os::remap(p, old, size);
    if (!q) return nullptr;
    LockGuard guard(lock);
    Entry* e = find(a);
    e->addr = 1;
    --live;
    live_bytes -= old;
    insert(reinterpret_cast<uintptr_t>(q), size);
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

void lock_all() { lock.lock(); }
bool lock_held() { return lock.is_locked(); }
void unlock_all(bool child) {
    if (child) lock.reset();
    else lock.unlock();
}

}  // namespace btm::large
