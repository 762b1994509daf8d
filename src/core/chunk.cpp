// The reservation and the page heap: chunks carved from reserved address
// space, and runs of pages inside chunks handed out as slabs.
//
// Invariant: every chunk lies inside a reservation recorded in `regions`
// (region 0 is the primary one, published in g.base/g.size); chunk memory is
// never unmapped, so a read of any address in a reservation's committed part
// never faults.  All state here is guarded by `heap_lock`.
#include "core/chunk.h"

#include <cstring>

#include "core/lock.h"
#include "os/os.h"

namespace btm {
uint64_t g_partition_after;
uint64_t g_part_mask_full;
}  // namespace btm

namespace btm::chunks {
namespace {

struct Region {
    uintptr_t base, size, used;  // [base, base+used) is carved into chunks
};
inline constexpr unsigned kMaxRegions = 64;
inline constexpr unsigned kMaxChunks = 1u << 17;  // 256 GiB of chunks

SpinLock heap_lock;
Region regions[kMaxRegions];
std::atomic<unsigned> nregions{0};
ChunkHeader** registry;  // all chunks, in creation order
unsigned nchunks;
ChunkHeader* avail;      // chunks with at least one free page
uint64_t nslabs;
uint64_t dirty_total;    // dirty pages in all chunks
uint64_t slab_pages;     // pages in live slabs
uint64_t clean_taken;    // clean pages slabs were made of: growth into unfaulted memory
uint32_t header_pages;

bool reserve_region(uint64_t want) {
    unsigned n = nregions.load(std::memory_order_relaxed);
    if (n == kMaxRegions) return false;
    uint64_t limit = os::address_space_limit();
    if (limit != ~uint64_t(0)) {
        // Leave most of a limited address space to the program itself.
        uint64_t cap = limit / 4;
        if (want > cap) want = cap;
    }
    want &= ~uint64_t(kChunkMask);
    for (; want >= 4 * kChunkSize; want /= 2) {
        void* p = os::reserve_aligned(want, kChunkSize);
        if (!p) continue;
        os::no_huge_pages(p, want);
        regions[n] = Region{reinterpret_cast<uintptr_t>(p), want, 0};
        nregions.store(n + 1, std::memory_order_release);
        return true;
    }
    return false;
}

void avail_push(ChunkHeader* c) {
    c->avail_prev = nullptr;
    c->avail_next = avail;
    if (avail) avail->avail_prev = c;
    avail = c;
    c->in_avail = true;
}

void avail_remove(ChunkHeader* c) {
    if (c->avail_prev) c->avail_prev->avail_next = c->avail_next;
    else avail = c->avail_next;
    if (c->avail_next) c->avail_next->avail_prev = c->avail_prev;
    c->in_avail = false;
}

ChunkHeader* chunk_new() {
    if (nchunks == kMaxChunks) return nullptr;
    for (;;) {
        unsigned n = nregions.load(std::memory_order_relaxed);
        Region& r = regions[n - 1];
        if (r.used + kChunkSize <= r.size) {
            void* p = reinterpret_cast<void*>(r.base + r.used);
            if (!os::commit(p, kChunkSize)) return nullptr;
            r.used += kChunkSize;
            auto* c = static_cast<ChunkHeader*>(p);
            c->magic = kChunkMagic;
            c->npages = uint32_t(kChunkSize >> g.page_shift);
            c->first_page = header_pages;
            c->free_pages = c->npages - header_pages;
            c->index = nchunks;
            c->fail_npages = 0xffff;
            for (uint32_t i = header_pages; i < c->npages; ++i) c->free_bits[i / 64] |= uint64_t(1) << (i % 64);
            registry[nchunks++] = c;
            // Partitions switch on once the heap is big enough to gain from
            // them (see the knob partition_after): a short-lived process
            // touches the metadata and first slabs of one partition only.
            if (uint64_t(nchunks) * kChunkSize > g_partition_after)
                __atomic_store_n(&g.part_mask, g_part_mask_full, __ATOMIC_RELAXED);
            avail_push(c);
            return c;
        }
        if (!reserve_region(regions[0].size)) return nullptr;
    }
}

// The first page at or after i whose bit equals `want`, or c->npages; the
// bit is "free", or with `dirty` "free and still resident".
uint32_t next_bit(const ChunkHeader* c, uint32_t i, bool want, bool dirty) {
    while (i < c->npages) {
        uint64_t word = c->free_bits[i / 64];
        if (dirty) word &= c->dirty_bits[i / 64];
        if (!want) word = ~word;
        word >>= i % 64;
        if (word) {
            i += unsigned(__builtin_ctzll(word));
            return i < c->npages ? i : c->npages;
        }
        i = (i | 63) + 1;
    }
    return c->npages;
}

// First fit: the lowest run of n free pages, or -1.  Word at a time, one
// step per free run: a bit-by-bit walk over a mostly free chunk took
// microseconds inside a malloc.  A failed search records n, so that the
// chunk is skipped for requests at least that long until pages come back.
int find_run(ChunkHeader* c, uint32_t n, bool dirty = false) {
    if (n >= c->fail_npages) return -1;
    for (uint32_t i = c->first_page; i < c->npages;) {
        uint32_t start = next_bit(c, i, true, dirty);
        if (start + n > c->npages) break;
        uint32_t end = next_bit(c, start, false, dirty);
        if (end - start >= n) return int(start);
        i = end;
    }
    if (!dirty) c->fail_npages = uint16_t(n);
    return -1;
}

// Calls fn(word index, mask) for the words of a page bitmap covering pages
// [first, first + n): slabs of a 1 MiB class span 256 pages, and a bit at a
// time over three bitmaps took a microsecond inside the malloc making one.
template <class Fn>
void for_words(uint32_t first, uint32_t n, Fn fn) {
    while (n) {
        uint32_t bit = first % 64;
        uint32_t k = n < 64 - bit ? n : 64 - bit;
        uint64_t mask = (k == 64 ? ~uint64_t(0) : (uint64_t(1) << k) - 1) << bit;
        fn(first / 64, mask);
        first += k;
        n -= k;
    }
}

// Resident free pages first: a slab on them costs no page fault inside the
// malloc that makes it.  Looked for in the first few chunks only, so a heap
// with no such run pays a bounded search.
inline constexpr unsigned kDirtyLook = 8;

}  // namespace

size_t registry_bytes() { return kMaxChunks * sizeof(ChunkHeader*); }

bool init(uint64_t want_bytes, void* registry_mem) {
    size_t page = size_t(1) << g.page_shift;
    header_pages = uint32_t((sizeof(ChunkHeader) + page - 1) / page);
    registry = static_cast<ChunkHeader**>(registry_mem);
    if (!reserve_region(want_bytes)) return false;
    g.base = regions[0].base;
    g.size = regions[0].size;
    return true;
}

bool owns(uintptr_t a) {
    unsigned n = nregions.load(std::memory_order_acquire);
    for (unsigned i = 0; i < n; ++i)
        if (a - regions[i].base < regions[i].size) return true;
    return false;
}

Slab* slab_alloc(uint32_t npages, uint32_t bin, uint32_t cls) {
    LockGuard guard(heap_lock);
    ChunkHeader* c = avail;
    int first = -1;
    if (dirty_total >= npages) {
        unsigned look = 0;
        for (; c && look < kDirtyLook; c = c->avail_next, ++look) {
            if (c->dirty_pages < npages) continue;
            first = find_run(c, npages, true);
            if (first >= 0) break;
        }
        if (first < 0) c = avail;
    }
    for (; first < 0 && c; c = c->avail_next) {
        if (c->free_pages < npages) continue;
        first = find_run(c, npages);
        if (first >= 0) break;
    }
    if (!c) {
        c = chunk_new();
        if (!c) return nullptr;
        first = find_run(c, npages);
    }
    uint32_t dirty = 0;
    for_words(uint32_t(first), npages, [c, &dirty](uint32_t w, uint64_t m) {
        dirty += uint32_t(__builtin_popcountll(c->dirty_bits[w] & m));
        c->free_bits[w] &= ~m;
        c->dirty_bits[w] &= ~m;
        c->aged_bits[w] &= ~m;
    });
    c->dirty_pages -= dirty;
    dirty_total -= dirty;
    clean_taken += npages - dirty;
    for (uint32_t i = 0; i < npages; ++i) c->pagemap[uint32_t(first) + i] = page_entry(bin, i, cls, g.page_shift);
    c->idle_ticks = 0;
    c->released = false;
    c->free_pages -= npages;
    slab_pages += npages;
    if (c->free_pages == 0) avail_remove(c);
    Slab* s = &c->slabs[first];
    s->free = nullptr;
    s->free_count = 0;
    s->bump = 0;
    s->used = 0;
    s->bin = bin;
    s->npages = uint16_t(npages);
    s->cls = uint8_t(cls);
    s->fresh = dirty < npages;
    s->zero = dirty == 0;
    s->list = kListNone;
    s->next = s->prev = s->qnext = nullptr;
    s->site = 0;
    s->remote.store(0, std::memory_order_relaxed);
    ++nslabs;
    return s;
}

void slab_free(Slab* s) {
    LockGuard guard(heap_lock);
    ChunkHeader* c = chunk_of(s);
    uint32_t first = slab_first_page(s);
    for (uint32_t i = 0; i < s->npages; ++i) c->pagemap[first + i] = 0;
    for_words(first, s->npages, [c](uint32_t w, uint64_t m) {
        c->free_bits[w] |= m;
        c->dirty_bits[w] |= m;
    });
    c->free_pages += s->npages;
    c->fail_npages = 0xffff;
    slab_pages -= s->npages;
    c->dirty_pages += s->npages;
    dirty_total += s->npages;
    if (!c->in_avail) avail_push(c);
    --nslabs;
}

void lock_all() { heap_lock.lock(); }
void unlock_all(bool child) {
    if (child) heap_lock.reset();
    else heap_lock.unlock();
}

namespace {

uint32_t data_pages() { return uint32_t(kChunkSize >> g.page_shift) - header_pages; }

// Takes the runs of set bits of `take` out of the chunk's free set.
size_t collect_runs(ChunkHeader* c, const uint64_t* take, Range* out, size_t max) {
    size_t n = 0;
    uint32_t i = c->first_page;
    while (i < c->npages && n < max) {
        // Skip to the next set bit a word at a time: this runs under the
        // page-heap lock, which every slab_alloc waits for meanwhile.
        uint64_t word = take[i / 64] >> (i % 64);
        if (!word) {
            i = (i | 63) + 1;
            continue;
        }
        i += unsigned(__builtin_ctzll(word));
        if (i >= c->npages) break;
        uint32_t start = i;
        while (i < c->npages && (take[i / 64] >> (i % 64) & 1)) {
            uint64_t bit = uint64_t(1) << (i % 64);
            c->free_bits[i / 64] &= ~bit;
            c->dirty_bits[i / 64] &= ~bit;
            c->aged_bits[i / 64] &= ~bit;
            ++i;
        }
        uint32_t len = i - start;
        c->free_pages -= len;
        c->dirty_pages -= len;
        dirty_total -= len;
        out[n++] = Range{reinterpret_cast<uintptr_t>(c) + (uintptr_t(start) << g.page_shift),
                         size_t(len) << g.page_shift};
    }
    return n;
}

}  // namespace

namespace {

// Dirty pages the heap may keep before they go back at once rather than at
// the next aging tick: max(kDirtyMin, slab memory / kDirtyShare).
inline constexpr uint64_t kDirtyMinBytes = uint64_t(4) << 20;
inline constexpr uint64_t kDirtyShare = 32;

uint64_t budget_pages(uint64_t slab) {
    uint64_t floor = kDirtyMinBytes >> g.page_shift;
    return slab / kDirtyShare > floor ? slab / kDirtyShare : floor;
}

// Under the lock: how many pages to release now, down to half the budget.
uint64_t excess_pages_locked() {
    uint64_t budget = budget_pages(slab_pages);
    return dirty_total > budget ? dirty_total - budget / 2 : 0;
}

}  // namespace

uint64_t dirty_excess() {
    // Read without the lock: a hint for when to take it.
    uint64_t budget = budget_pages(__atomic_load_n(&slab_pages, __ATOMIC_RELAXED));
    uint64_t d = __atomic_load_n(&dirty_total, __ATOMIC_RELAXED);
    return d > budget ? (d - budget) << g.page_shift : 0;
}

size_t collect(Range* out, size_t max, Collect mode, uint32_t warm_chunks) {
    LockGuard guard(heap_lock);
    bool all = mode == Collect::kAll;
    uint64_t excess = mode == Collect::kExcess ? excess_pages_locked() : 0;
    if (mode == Collect::kExcess && excess == 0) return 0;
    size_t n = 0;
    uint32_t free_chunks = 0;
    for (unsigned k = nchunks; k-- > 0 && n < max;) {  // newest first: keep the low chunks warm
        ChunkHeader* c = registry[k];
        if (c->releasing) continue;
        bool empty = c->free_pages == data_pages();
        if (empty && !c->released) {
            // A drained chunk: past the warm pool, or idle for a whole tick,
            // it goes back entirely, header pages but the first included.
            ++free_chunks;
            if (all || free_chunks > warm_chunks || (mode == Collect::kAged && c->idle_ticks >= 1)) {
                c->releasing = true;
                if (c->in_avail) avail_remove(c);
                dirty_total -= c->dirty_pages;
                c->dirty_pages = 0;
                for (auto& w : c->dirty_bits) w = 0;
                for (auto& w : c->aged_bits) w = 0;
                size_t page = size_t(1) << g.page_shift;
                out[n++] = Range{reinterpret_cast<uintptr_t>(c) + page, kChunkSize - page};
                if (excess) excess = excess > c->npages ? excess - c->npages : 0;
                if (mode == Collect::kExcess && excess == 0) break;
                continue;
            }
            if (mode == Collect::kAged) ++c->idle_ticks;
        }
        if (!c->dirty_pages) continue;
        uint64_t take[kMaxPagesPerChunk / 64];
        bool whole = mode != Collect::kAged;
        for (unsigned w = 0; w < kMaxPagesPerChunk / 64; ++w)
            take[w] = whole ? c->dirty_bits[w] : c->dirty_bits[w] & c->aged_bits[w];
        uint32_t before = c->dirty_pages;
        n += collect_runs(c, take, out + n, max - n);
        if (mode == Collect::kAged) {
            // What is still dirty now is aged at the next tick unless reused.
            for (unsigned w = 0; w < kMaxPagesPerChunk / 64; ++w) c->aged_bits[w] = c->dirty_bits[w];
        } else if (mode == Collect::kExcess) {
            uint32_t got = before - c->dirty_pages;
            excess = excess > got ? excess - got : 0;
            if (excess == 0) break;
        }
    }
    return n;
}

void finish_release(const Range* r, size_t n) {
    LockGuard guard(heap_lock);
    for (size_t i = 0; i < n; ++i) {
        ChunkHeader* c = chunk_of(r[i].addr);
        if (c->releasing && r[i].len == kChunkSize - (size_t(1) << g.page_shift)) {
            // The header pages read back as zeros: a page map of free pages.
            c->releasing = false;
            c->released = true;
            c->idle_ticks = 0;
            c->fail_npages = 0xffff;
            if (!c->in_avail) avail_push(c);
            continue;
        }
        uint32_t first = uint32_t((r[i].addr & kChunkMask) >> g.page_shift);
        uint32_t len = uint32_t(r[i].len >> g.page_shift);
        for_words(first, len, [c](uint32_t w, uint64_t m) { c->free_bits[w] |= m; });
        c->free_pages += len;
        c->fail_npages = 0xffff;
        if (!c->in_avail) avail_push(c);
    }
}

uint64_t dirty_bytes() { return dirty_total << g.page_shift; }
uint64_t clean_taken_pages() { return __atomic_load_n(&clean_taken, __ATOMIC_RELAXED); }


size_t prefault_collect(Range* out, size_t max, uint64_t target) {
    LockGuard guard(heap_lock);
    // Resident free pages where slab_alloc looks for them first.
    uint64_t ready = 0;
    unsigned look = 0;
    for (ChunkHeader* c = avail; c && look < kDirtyLook; c = c->avail_next, ++look) ready += c->dirty_pages;
    if (ready >= target) return 0;
    uint64_t need = target - ready;
    size_t n = 0;
    look = 0;
    for (ChunkHeader* c = avail; c && n < max && need && look < kDirtyLook; ++look) {
        ChunkHeader* next = c->avail_next;
        for (uint32_t i = c->first_page; i < c->npages && n < max && need;) {
            auto clean = [&](uint32_t p) {
                return (c->free_bits[p / 64] & ~c->dirty_bits[p / 64]) >> (p % 64) & 1;
            };
            if (!clean(i)) {
                ++i;
                continue;
            }
            uint32_t start = i;
            while (i < c->npages && need && clean(i)) {
                c->free_bits[i / 64] &= ~(uint64_t(1) << (i % 64));
                ++i;
                --need;
            }
            c->free_pages -= i - start;
            out[n++] = Range{reinterpret_cast<uintptr_t>(c) + (uintptr_t(start) << g.page_shift),
                             size_t(i - start) << g.page_shift};
        }
        if (c->free_pages == 0 && c->in_avail) avail_remove(c);
        c = next;
        if ((!c || look + 1 == kDirtyLook) && n == 0 && need) {
            c = chunk_new();  // nothing clean where slabs are made: map a chunk ahead of demand
            look = 0;
        }
    }
    return n;
}

void finish_prefault(const Range* r, size_t n) {
    LockGuard guard(heap_lock);
    for (size_t i = 0; i < n; ++i) {
        ChunkHeader* c = chunk_of(r[i].addr);
        uint32_t first = uint32_t((r[i].addr & kChunkMask) >> g.page_shift);
        uint32_t len = uint32_t(r[i].len >> g.page_shift);
        for_words(first, len, [c](uint32_t w, uint64_t m) {
            c->free_bits[w] |= m;
            c->dirty_bits[w] |= m;
            c->aged_bits[w] &= ~m;
        });
        c->free_pages += len;
        c->dirty_pages += len;
        dirty_total += len;
        c->fail_npages = 0xffff;
        c->released = false;
        c->idle_ticks = 0;
        if (!c->in_avail) avail_push(c);
    }
}
uint64_t slab_bytes() { return __atomic_load_n(&slab_pages, __ATOMIC_RELAXED) << g.page_shift; }

namespace {

// Calls fn(first page, slab) for every live slab of a chunk (heap lock held).
template <class Fn>
void for_each_slab(ChunkHeader* c, Fn fn) {
    for (uint32_t p = c->first_page; p < c->npages;) {
        uint64_t e = c->pagemap[p];
        if (e == 0 || (pe_offset(e) >> g.page_shift) != 0) {
            ++p;
            continue;
        }
        const Slab& s = c->slabs[p];
        fn(p, s);
        p += s.npages;
    }
}

}  // namespace

size_t cold_ranges(uint32_t* cursor, uint32_t before, Range* out, size_t max) {
    LockGuard guard(heap_lock);
    size_t n = 0;
    // Stop at a chunk boundary with room for a whole chunk's worth of ranges.
    for (; *cursor < nchunks && n + kMaxPagesPerChunk / 2 <= max; ++*cursor) {
        ChunkHeader* c = registry[*cursor];
        if (c->released) continue;
        for_each_slab(c, [&](uint32_t p, const Slab& s) {
            if (int32_t(before - s.epoch) <= 0) return;
            uintptr_t a = reinterpret_cast<uintptr_t>(c) + (uintptr_t(p) << g.page_shift);
            size_t len = size_t(s.npages) << g.page_shift;
            if (n && out[n - 1].addr + out[n - 1].len == a) out[n - 1].len += len;
            else out[n++] = Range{a, len};
        });
    }
    return n;
}

void occupancy(uint64_t hist[10], uint64_t list[4]) {
    LockGuard guard(heap_lock);
    for (unsigned k = 0; k < nchunks; ++k) {
        if (registry[k]->released) continue;
        for_each_slab(registry[k], [&](uint32_t, const Slab& s) {
            uint32_t cap = g_class[s.cls].capacity;
            ++hist[cap ? (s.used * 10 / cap > 9 ? 9 : s.used * 10 / cap) : 0];
            ++list[s.list & 3];
        });
    }
}

Counters counters() {
    LockGuard guard(heap_lock);
    Counters k{};
    k.chunks = nchunks;
    k.slabs = nslabs;
    k.committed = uint64_t(nchunks) * kChunkSize;
    k.dirty = dirty_total << g.page_shift;
    for (unsigned i = 0; i < nchunks; ++i) k.free_chunks += registry[i]->free_pages == data_pages();
    unsigned n = nregions.load(std::memory_order_relaxed);
    for (unsigned i = 0; i < n; ++i) k.reserved += regions[i].size;
    return k;
}

}  // namespace btm::chunks
