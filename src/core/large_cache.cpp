// Invariant: the ranges in `slots` are disjoint, page aligned, mapped, and
// ours alone (no live block and no other range overlaps one); `total` is the
// sum of their sizes.  A range taken out of `slots` belongs to the taker
// until it comes back or is unmapped, so system calls on it run without the
// lock.  Pages of a range beyond its `dirty` prefix read as zero.
#include "core/large_cache.h"

#include <atomic>

#include "core/base.h"
#include "core/lock.h"
#include "core/state.h"
#include "os/os.h"

namespace btm::large::cache {
namespace {

struct Range {
    uintptr_t addr;  // 0 = free slot
    size_t size;
    size_t dirty;   // bytes from addr that may not be zero
    uint64_t seq;   // when it was freed: eviction takes the oldest first
};

inline constexpr unsigned kSlots = 64;
inline constexpr unsigned kMaxPieces = 8;
// What is left of a range past a request stays cached when at least this big;
// a smaller rest goes with the block (malloc_usable_size shows it).
inline constexpr size_t kSplitMin = 256 * 1024;
inline constexpr uint32_t kEpochSeconds = 2;

// In .bss, what every process reads (reclaim's poll asks for `total` on
// slow paths) or writes (the lock, at fork); the rest in .lbss, touched only
// by a process with large blocks.
SpinLock cache_lock;
std::atomic<uint64_t> total{0};
uint64_t cap;
struct Cold {
    Range slots[kSlots]{};
    std::atomic<uint64_t> released{0}, live{0}, peak_cur{0};
    uint64_t peak_prev = 0, seq = 0;
    uint32_t epoch_start = 0;  // coarse seconds; 0 until the first free
    // A large block was freed; and one was allocated after that, the first
    // sign of reuse, without which nothing is cached (see put()).
    std::atomic<bool> freed{false}, reusing{false};
};
BTM_COLD_BSS constinit Cold cold;
auto& slots = cold.slots;
auto& released = cold.released;
auto& live = cold.live;
auto& peak_cur = cold.peak_cur;
auto& peak_prev = cold.peak_prev;
auto& seq = cold.seq;
auto& epoch_start = cold.epoch_start;
auto& freed = cold.freed;
auto& reusing = cold.reusing;

void add_total(int64_t d) { total.store(total.load(std::memory_order_relaxed) + uint64_t(d), std::memory_order_relaxed); }

// Starts a new epoch every kEpochSeconds: the peak of the one before is kept,
// older ones are forgotten.
void roll() {
    uint32_t now = os::coarse_seconds();
    if (epoch_start == 0) {
        epoch_start = now;
        return;
    }
    if (now - epoch_start < kEpochSeconds) return;
    peak_prev = peak_cur.load(std::memory_order_relaxed);
    peak_cur.store(live.load(std::memory_order_relaxed), std::memory_order_relaxed);
    epoch_start = now;
}

uint64_t capacity() {
    uint64_t pc = peak_cur.load(std::memory_order_relaxed);
    uint64_t peak = pc > peak_prev ? pc : peak_prev;
    uint64_t l = live.load(std::memory_order_relaxed);
    uint64_t room = peak > l ? peak - l : 0;
    return room < cap ? room : cap;
}

// Moves the oldest ranges to *out while the cache is over `limit` (or, with
// `need_slot`, until a slot is free).
void evict(uint64_t limit, bool need_slot, Evicted* out) {
    while (out->n < Evicted::kMax) {
        int old = -1;
        bool free_slot = false;
        for (unsigned i = 0; i < kSlots; ++i) {
            if (!slots[i].addr) {
                free_slot = true;
                continue;
            }
            if (old < 0 || slots[i].seq < slots[old].seq) old = int(i);
        }
        if (old < 0 || (total.load(std::memory_order_relaxed) <= limit && (free_slot || !need_slot))) return;
        out->addr[out->n] = slots[old].addr;
        out->size[out->n++] = slots[old].size;
        add_total(-int64_t(slots[old].size));
        slots[old] = Range{};
    }
}

bool store(const Range& r) {
    for (Range& s : slots) {
        if (s.addr) continue;
        s = r;
        add_total(int64_t(r.size));
        return true;
    }
    return false;
}

// The smallest range with an aligned start that holds `size`.
int best_fit(size_t size, size_t align) {
    int best = -1;
    for (unsigned i = 0; i < kSlots; ++i) {
        const Range& r = slots[i];
        if (!r.addr || r.size < size || (r.addr & (align - 1))) continue;
        if (best < 0 || r.size < slots[best].size) best = int(i);
    }
    return best;
}

// Takes `size` bytes from the start of *r, or all of it when the rest would
// be under kSplitMin; returns the bytes taken.
size_t carve(Range* r, size_t size) {
    size_t give = r->size - size >= kSplitMin ? size : r->size;
    add_total(-int64_t(give));
    if (give == r->size) *r = Range{};
    else *r = Range{r->addr + give, r->size - give, r->dirty > give ? r->dirty - give : 0, r->seq};
    return give;
}

// Takes up to kMaxPieces ranges, largest first, until they add up to `size`.
unsigned take_pieces(size_t size, Range* out) {
    unsigned n = 0;
    size_t sum = 0;
    while (n < kMaxPieces && sum < size) {
        int big = -1;
        for (unsigned i = 0; i < kSlots; ++i)
            if (slots[i].addr && (big < 0 || slots[i].size > slots[big].size)) big = int(i);
        if (big < 0) break;
        out[n++] = slots[big];
        sum += slots[big].size;
        add_total(-int64_t(slots[big].size));
        slots[big] = Range{};
    }
    return n;
}

// Moves [src, src+len) to dst; a range the kernel will not move at once
// spans mappings, so its halves are tried.  A page that cannot be moved is
// unmapped, and the fresh zero page at dst stays.
void move_pages(uintptr_t src, size_t len, uintptr_t dst) {
    if (os::move(reinterpret_cast<void*>(src), len, reinterpret_cast<void*>(dst))) return;
    size_t page = g.page_mask + 1;
    if (len <= page) {
        os::unmap(reinterpret_cast<void*>(src), len);
        released.fetch_add(len, std::memory_order_relaxed);
        return;
    }
    size_t half = (len / 2 + g.page_mask) & ~g.page_mask;
    move_pages(src, half, dst);
    move_pages(src + half, len - half, dst + half);
}

// One block of `size` bytes from the pieces: the first grown in place or
// moved by mremap, the others' pages moved in behind it.  What a piece has
// beyond the block goes back to the cache.
void* assemble(size_t size, Range* pieces, unsigned n, size_t* dirty) {
    // Every piece is smaller than `size` (none fitted).
    uintptr_t q = reinterpret_cast<uintptr_t>(os::remap(reinterpret_cast<void*>(pieces[0].addr), pieces[0].size, size));
    size_t off = 0, dirty_end = 0;
    unsigned first = 0;
    if (q) {
        off = pieces[0].size;
        dirty_end = pieces[0].dirty;
        first = 1;
    } else {
        // The first piece spans mappings (a block assembled before): a fresh
        // mapping, every piece moved in.
        q = reinterpret_cast<uintptr_t>(os::map(size));
    }
    Range rest[kMaxPieces];
    unsigned nrest = 0;
    for (unsigned i = first; i < n; ++i) {
        Range r = pieces[i];
        size_t len = !q ? 0 : r.size < size - off ? r.size : size - off;
        if (len) {
            move_pages(r.addr, len, q + off);
            if (r.dirty) dirty_end = off + (r.dirty < len ? r.dirty : len);
            off += len;
        }
        if (len < r.size) rest[nrest++] = Range{r.addr + len, r.size - len, r.dirty > len ? r.dirty - len : 0, r.seq};
    }
    if (nrest) {
        Evicted ev{};
        {
            LockGuard guard(cache_lock);
            for (unsigned i = 0; i < nrest; ++i)
                if (!store(rest[i]) && ev.n < Evicted::kMax) {
                    ev.addr[ev.n] = rest[i].addr;
                    ev.size[ev.n++] = rest[i].size;
                }
        }
        unmap(ev);
    }
    *dirty = dirty_end;
    return reinterpret_cast<void*>(q);  // null (no memory for a mapping): every piece went back
}

}  // namespace

BTM_STARTUP void init(uint64_t cap_bytes) { cap = cap_bytes; }

BTM_STARTUP void note_live(uint64_t l) {
    live.store(l, std::memory_order_relaxed);
    if (l > peak_cur.load(std::memory_order_relaxed)) peak_cur.store(l, std::memory_order_relaxed);
}

BTM_STARTUP void* take(size_t size, size_t align, size_t* got, size_t* dirty) {
    if (total.load(std::memory_order_relaxed) == 0) {
        if (freed.load(std::memory_order_relaxed) && !reusing.load(std::memory_order_relaxed))
            reusing.store(true, std::memory_order_relaxed);
        return nullptr;
    }
    Range pieces[kMaxPieces];
    unsigned n;
    {
        LockGuard guard(cache_lock);
        int f = best_fit(size, align);
        if (f >= 0) {
            uintptr_t a = slots[f].addr;
            size_t range_dirty = slots[f].dirty;
            *got = carve(&slots[f], size);
            *dirty = range_dirty < *got ? range_dirty : *got;
            return reinterpret_cast<void*>(a);
        }
        if (align > g.page_mask + 1) return nullptr;
        n = take_pieces(size, pieces);
    }
    if (n == 0) return nullptr;
    void* p = assemble(size, pieces, n, dirty);
    if (p) *got = size;
    return p;
}

size_t extend(uintptr_t end, size_t size) {
    if (total.load(std::memory_order_relaxed) == 0) return 0;
    LockGuard guard(cache_lock);
    for (Range& r : slots)
        if (r.addr == end && r.size >= size) return carve(&r, size);
    return 0;
}

void put(uintptr_t a, size_t size, Evicted* out) {
    LockGuard guard(cache_lock);
    // Until a large allocation has followed a large free, a freed block is
    // unmapped: a process that frees one buffer on its way out (sort does)
    // keeps nothing and starts no thread to decay it.
    freed.store(true, std::memory_order_relaxed);
    if (!reusing.load(std::memory_order_relaxed)) {
        out->addr[0] = a;  // out is empty on entry
        out->size[0] = size;
        out->n = 1;
        return;
    }
    roll();
    evict(~uint64_t(0), true, out);  // a slot comes free: out is empty on entry
    store(Range{a, size, size, ++seq});
    evict(capacity(), false, out);
}

void unmap(const Evicted& e) {
    size_t sum = 0;
    for (unsigned i = 0; i < e.n; ++i) {
        os::unmap(reinterpret_cast<void*>(e.addr[i]), e.size[i]);
        sum += e.size[i];
    }
    released.fetch_add(sum, std::memory_order_relaxed);
}

bool contains(uintptr_t a) {
    LockGuard guard(cache_lock);
    for (const Range& r : slots)
        if (r.addr && a - r.addr < r.size) return true;
    return false;
}

namespace {

// Unmaps the oldest ranges while the cache is over its capacity (`all`: over
// 0), in batches of Evicted::kMax, the lock dropped for each batch's munmaps.
size_t shrink(bool all) {
    if (total.load(std::memory_order_relaxed) == 0) return 0;
    size_t sum = 0;
    for (;;) {
        Evicted ev{};
        {
            LockGuard guard(cache_lock);
            if (!all) roll();
            evict(all ? 0 : capacity(), false, &ev);
        }
        unmap(ev);
        for (unsigned i = 0; i < ev.n; ++i) sum += ev.size[i];
        if (ev.n < Evicted::kMax) return sum;
    }
}

}  // namespace

size_t decay() { return shrink(false); }
size_t trim() { return shrink(true); }

BTM_STARTUP uint64_t bytes() { return total.load(std::memory_order_relaxed); }
uint64_t released_bytes() { return released.load(std::memory_order_relaxed); }
void lock() { cache_lock.lock(); }
bool lock_held() { return cache_lock.is_locked(); }
void unlock(bool child) {
    if (child) cache_lock.reset();
    else cache_lock.unlock();
}

}  // namespace btm::large::cache
