// The reservation and the page heap: chunks carved from reserved address
// space, and runs of pages inside chunks handed out as slabs.
//
// Invariant: every chunk lies inside a reservation recorded in `regions`
// (region 0 is the primary one, published in g.base/g.size); chunk memory is
// never unmapped, so a read of any address in a reservation's committed part
// never faults.  Chunks are carved in address order, so the committed part
// is [base, base + used): that, not the whole reservation, is what the owner
// tests accept (g.size is region 0's `used`), and a pointer into the
// reserved, never committed rest is foreign.  All state here is guarded by
// `heap_lock`; `used` and g.size are also read without it.
#include "core/chunk.h"

#include <cstring>

#include "core/lock.h"
#include "os/memfd.h"
#include "os/os.h"

namespace btm {
uint64_t g_partition_after;
uint64_t g_part_mask_full;
}  // namespace btm

namespace btm::chunks {

BTM_COLD_BSS Region regions[kMaxRegions];  // .data holds the introspection descriptor
std::atomic<unsigned> nregions{0};
Group* registry;
unsigned nchunks;
unsigned max_chunks;
std::atomic<uint32_t> clock_base{0};
BTM_COLD_BSS void (*unmesh_hook)(Slab*);

namespace {

SpinLock heap_lock;
bool first_committed;  // the primary reservation's first chunk is read-write already
uint64_t nslabs;
uint64_t nmade;  // slabs made so far (btm_stats.slabs_made)
uint64_t dirty_total;    // dirty pages in all chunks
uint64_t slab_pages;     // pages in live slabs
uint64_t clean_taken;    // clean pages slabs were made of: growth into unfaulted memory
uint32_t header_pages;
// Intern mode: the head of each partition's list of chunks (registry index
// + 1, indexed by ChunkHeader::owner).  Untouched in hash mode, and out of
// the small globals' page (4 KiB).
BTM_COLD_BSS uint32_t owned_head[kMaxPartitions + 1];
BTM_COLD_BSS int backing_fd1[kMaxRegions];  // memfd + 1 (0: anonymous)

// The reservation asked for under the address-space limit, where reserved
// but unused address space is lost to the program: the primary one takes a
// 64th of the limit (python3 uses under two chunks at its floor, and a
// quarter of the limit left it short), later ones double up to a quarter.
// At least one chunk: a small reservation still beats a mapping per malloc.
uint64_t capped(uint64_t want, uint64_t limit, bool primary) {
    uint64_t cap = limit == ~uint64_t(0) ? want : primary ? limit / 64 : limit / 4;
    if (want > cap) want = cap;
    want &= ~uint64_t(kChunkMask);
    return want > kChunkSize ? want : kChunkSize;
}

// A new reservation of about `want` bytes, with `below` bytes under it
// (page-rounded; the primary one's tables) and them and the first chunk made
// read-write in one call, under the soft RLIMIT_AS `limit`; returns the
// start of the `below` bytes, or null.
char* reserve_region(uint64_t want, size_t below, uint64_t limit) {
    unsigned n = nregions.load(std::memory_order_relaxed);
    if (n == kMaxRegions) return nullptr;
    for (want = capped(want, limit, n == 0); want >= kChunkSize; want /= 2) {
        want &= ~uint64_t(kChunkMask);
        char* p = static_cast<char*>(limit == ~uint64_t(0) ? os::reserve_aligned(want, kChunkSize, below)
                                                           : os::reserve_limited(want, kChunkSize, below));
        if (!p) continue;
        // The tables and the first chunk in one read-write range: one system
        // call and, with equal flags, one VMA with the chunks that follow.
        if (below) {
            if (!os::commit(p - below, below + kChunkSize)) {
                os::unmap(p - below, below + want);  // no commit to be had: give the range back
                return nullptr;
            }
            first_committed = true;
        }
        regions[n] = Region{reinterpret_cast<uintptr_t>(p), want, 0};
        if (g.mesh) {
            int fd = os::memfd::create(want);
            backing_fd1[n] = fd >= 0 ? fd + 1 : 0;
        }
        nregions.store(n + 1, std::memory_order_release);
        return p - below;
    }
    return nullptr;
}

Entry& entry(unsigned k) { return registry[k / 64].entries[k % 64]; }
Entry& entry_of(const ChunkHeader* c) { return entry(c->index); }

// Re-derives the chunk's searchable bit after its counts or state changed.
void refresh(const ChunkHeader* c) {
    uint64_t bit = uint64_t(1) << (c->index % 64);
    if (entry_of(c).free_pages && !c->releasing) registry[c->index / 64].searchable |= bit;
    else registry[c->index / 64].searchable &= ~bit;
}

// Calls fn(entry) for searchable chunks in registry order until it returns true.
template <class Fn>
void for_searchable(Fn fn) {
    for (unsigned w = 0; w * 64 < nchunks; ++w) {
        for (uint64_t bits = registry[w].searchable; bits; bits &= bits - 1)
            if (fn(registry[w].entries[__builtin_ctzll(bits)])) return;
    }
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

ChunkHeader* chunk_new() {
    if (nchunks == max_chunks) return nullptr;
    for (;;) {
        unsigned n = nregions.load(std::memory_order_relaxed);
        Region& r = regions[n - 1];
        if (r.used + kChunkSize <= r.size) {
            void* p = reinterpret_cast<void*>(r.base + r.used);
            // A memfd region's chunks all come from its file (fork's child
            // copies the file, not the memory): no anonymous fallback.
            if (backing_fd1[n - 1]) {
                if (!os::memfd::map(p, kChunkSize, backing_fd1[n - 1] - 1, r.used)) return nullptr;
            } else if (!first_committed && !os::commit(p, kChunkSize)) {
                return nullptr;
            }
            first_committed = false;
            // Published after the commit: an owner test that accepts the
            // new chunk finds it readable.
            __atomic_store_n(&r.used, r.used + kChunkSize, __ATOMIC_RELEASE);
            if (n == 1) __atomic_store_n(&g.size, r.used, __ATOMIC_RELEASE);
            auto* c = static_cast<ChunkHeader*>(p);
            c->magic = kChunkMagic;
            c->npages = uint32_t(kChunkSize >> g.page_shift);
            c->first_page = header_pages;
            c->index = nchunks;
            uint16_t data = uint16_t(c->npages - header_pages);
            for_words(header_pages, data, [c](uint32_t w, uint64_t m) { c->free_bits[w] |= m; });
            entry(nchunks++) = Entry{c, data, 0, data, 0};
            // Partitions switch on once the heap is big enough to gain from
            // them (see the knob partition_after): a short-lived process
            // touches the metadata and first slabs of one partition only.
            if (!small_heap()) {
                __atomic_store_n(&g.part_mask, g_part_mask_full, __ATOMIC_RELAXED);
                end_coarse_phase();
            }
            refresh(c);
            return c;
        }
        uint64_t limit = os::address_space_limit().soft;
        if (!reserve_region(limit != ~uint64_t(0) ? 2 * regions[n - 1].size : regions[0].size, 0, limit)) return nullptr;
    }
}

// Which pages a bitmap walk looks at: free ones, free and still resident
// (dirty) ones, or free and clean (released or never used) ones.
enum class Pages : uint8_t { kFree, kResident, kClean };
Pages free_or_resident(bool dirty) { return dirty ? Pages::kResident : Pages::kFree; }

uint64_t page_word(const ChunkHeader* c, uint32_t w, Pages which) {
    uint64_t word = c->free_bits[w];
    if (which == Pages::kResident) word &= c->dirty_bits[w];
    if (which == Pages::kClean) word &= ~c->dirty_bits[w];
    return word;
}

// The first page at or after i whose bit (a page of the `which` kind)
// equals `want`, or c->npages.
uint32_t next_bit(const ChunkHeader* c, uint32_t i, bool want, Pages which) {
    while (i < c->npages) {
        uint64_t word = page_word(c, i / 64, which);
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

// The first page of the run of set bits that page i (set) belongs to; the
// header pages' bits are never set, so the walk stops at the first data page.
uint32_t run_start(const ChunkHeader* c, uint32_t i, Pages which) {
    while (i > 0) {
        uint32_t j = i - 1, w = j / 64, b = j % 64;
        uint64_t word = page_word(c, w, which);
        uint64_t clear = ~word & (b == 63 ? ~uint64_t(0) : (uint64_t(1) << (b + 1)) - 1);  // at or below j
        if (clear) return w * 64 + 64 - unsigned(__builtin_clzll(clear));
        i = w * 64;
    }
    return 0;
}

// Pages [first, first + n) came back to the free set (and, with `dirty`, to
// its resident part): counts, and the bounds raised to the run they joined.
void pages_back(ChunkHeader* c, uint32_t first, uint32_t n, bool dirty) {
    Entry& e = entry_of(c);
    auto joined = [&](Pages which) { return next_bit(c, first + n, false, which) - run_start(c, first, which); };
    e.free_pages = uint16_t(e.free_pages + n);
    uint32_t run = joined(Pages::kFree);
    if (run > e.max_run) e.max_run = uint16_t(run);
    if (dirty) {
        e.dirty_pages = uint16_t(e.dirty_pages + n);
        run = joined(Pages::kResident);
        if (run > e.max_dirty_run) e.max_dirty_run = uint16_t(run);
    }
    refresh(c);
}

// First fit: the lowest run of n free (with `dirty`, free and resident)
// pages, or -1.  Word at a time, one step per free run: a bit-by-bit walk
// over a mostly free chunk took microseconds inside a malloc.  A failed
// search leaves the chunk's bound exact, so that the chunk is skipped for
// requests longer than its longest run until pages come back and merge.
int find_run(ChunkHeader* c, uint32_t n, bool dirty) {
    uint32_t longest = 0;
    for (uint32_t i = c->first_page; i < c->npages;) {
        uint32_t start = next_bit(c, i, true, free_or_resident(dirty));
        if (start >= c->npages) break;
        uint32_t end = next_bit(c, start, false, free_or_resident(dirty));
        if (end - start >= n) return int(start);
        if (end - start > longest) longest = end - start;
        i = end;
    }
    Entry& e = entry_of(c);
    (dirty ? e.max_dirty_run : e.max_run) = uint16_t(longest);
    return -1;
}

// Resident free pages first: a slab on them costs no page fault inside the
// malloc that makes it.  At most this many chunks are searched for them, so
// a heap whose resident pages are scattered pays a bounded search.
inline constexpr unsigned kDirtyLook = 8;

// Like for_searchable, over the chunks of one owner only (intern mode).
template <class Fn>
void for_searchable_owned(uint16_t owner, Fn fn) {
    for (uint32_t k = owned_head[owner]; k; k = entry(k - 1).chunk->next_owned) {
        if (registry[(k - 1) / 64].searchable >> ((k - 1) % 64) & 1 && fn(entry(k - 1))) return;
    }
}

// The lowest run of n pages (resident ones with `dirty`) in a searchable
// chunk of `owner` (0: of any chunk): its chunk in *out and its first page,
// or -1.
int search(uint32_t n, bool dirty, uint16_t owner, ChunkHeader** out) {
    int first = -1;
    unsigned tries = 0;
    auto fit = [&](Entry& e) {
        if ((dirty ? e.dirty_pages : e.free_pages) < n || (dirty ? e.max_dirty_run : e.max_run) < n) return false;
        first = find_run(e.chunk, n, dirty);
        *out = e.chunk;
        return first >= 0 || (dirty && ++tries == kDirtyLook);
    };
    if (owner) for_searchable_owned(owner, fit);
    else for_searchable(fit);
    return first;
}

}  // namespace

void* init(uint64_t want_bytes, size_t table_bytes) {
    size_t page = size_t(1) << g.page_shift;
    header_pages = uint32_t((sizeof(ChunkHeader) + page - 1) / page);
    // The registry right after the caller's tables: their last ones and its
    // first group share a page, the one a small process touches for both.
    // It holds what the hard address-space limit allows: sized for
    // kMaxChunks, it was 2 MiB of address space, more than a small
    // program's whole heap under a limit.
    os::AddressSpaceLimit limit = os::address_space_limit();
    uint64_t hard = limit.hard / kChunkSize;
    max_chunks = unsigned(hard < kMaxChunks ? hard : kMaxChunks);
    if (max_chunks == 0) return nullptr;
    size_t registry_at = (table_bytes + 63) & ~size_t(63);
    size_t registry_bytes = (max_chunks + 63) / 64 * sizeof(Group);
    size_t below = (registry_at + registry_bytes + page - 1) & ~(page - 1);
    if (limit.soft != ~uint64_t(0) && !os::heap_leaves_room(below + kChunkSize, limit.soft)) return nullptr;
    char* tables = reserve_region(want_bytes, below, limit.soft);
    if (!tables) return nullptr;
    registry = reinterpret_cast<Group*>(tables + registry_at);
    g.base = regions[0].base;
    g.size = 0;  // no chunk yet (chunk_new publishes the committed part)
    return tables;
}

bool owns(uintptr_t a) {
    unsigned n = nregions.load(std::memory_order_acquire);
    for (unsigned i = 0; i < n; ++i)
        if (a - regions[i].base < __atomic_load_n(&regions[i].used, __ATOMIC_ACQUIRE)) return true;
    return false;
}

Slab* slab_alloc(uint32_t npages, uint32_t bin, uint32_t cls) {
    LockGuard guard(heap_lock);
    const uint16_t owner = g.intern ? uint16_t((bin >> kClassBits) + 1) : 0;
    ChunkHeader* c = nullptr;
    int first = dirty_total >= npages ? search(npages, true, owner, &c) : -1;
    if (first < 0) first = search(npages, false, owner, &c);
    if (first < 0) {
        c = chunk_new();
        if (!c) return nullptr;
        if (owner) {
            c->owner = owner;
            c->next_owned = owned_head[owner];
            owned_head[owner] = c->index + 1;
        }
        first = find_run(c, npages, false);
    }
    uint32_t dirty = 0;
    for_words(uint32_t(first), npages, [c, &dirty](uint32_t w, uint64_t m) {
        dirty += popcount64(c->dirty_bits[w] & m);
        c->free_bits[w] &= ~m;
        c->dirty_bits[w] &= ~m;
        c->aged_bits[w] &= ~m;
    });
    Entry& e = entry_of(c);
    e.dirty_pages = uint16_t(e.dirty_pages - dirty);
    e.free_pages = uint16_t(e.free_pages - npages);
    refresh(c);
    dirty_total -= dirty;
    clean_taken += npages - dirty;
    for (uint32_t i = 0; i < npages; ++i) c->pagemap[uint32_t(first) + i] = page_entry(bin, i, cls, g.page_shift);
    c->idle_ticks = 0;
    c->released = false;
    slab_pages += npages;
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
    ++nmade;
    return s;
}

void slab_free(Slab* s) {
    if (BTM_UNLIKELY(g.mesh) && unmesh_hook) unmesh_hook(s);
    LockGuard guard(heap_lock);
    ChunkHeader* c = chunk_of(s);
    uint32_t first = slab_first_page(s);
    for (uint32_t i = 0; i < s->npages; ++i) c->pagemap[first + i] = 0;
    for_words(first, s->npages, [c](uint32_t w, uint64_t m) {
        c->free_bits[w] |= m;
        c->dirty_bits[w] |= m;
    });
    pages_back(c, first, s->npages, true);
    slab_pages -= s->npages;
    dirty_total += s->npages;
    --nslabs;
}

void lock_all() { heap_lock.lock(); }
bool lock_held() { return heap_lock.is_locked(); }
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
        Entry& e = entry_of(c);
        e.free_pages = uint16_t(e.free_pages - len);
        e.dirty_pages = uint16_t(e.dirty_pages - len);
        refresh(c);
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

// The background thread's and malloc_trim's: BTM_LATE (src/core/base.h).
BTM_LATE size_t collect(Range* out, size_t max, Collect mode, uint32_t warm_chunks) {
    LockGuard guard(heap_lock);
    bool all = mode == Collect::kAll;
    uint64_t excess = mode == Collect::kExcess ? excess_pages_locked() : 0;
    if (mode == Collect::kExcess && excess == 0) return 0;
    size_t n = 0;
    uint32_t free_chunks = 0;
    for (unsigned k = nchunks; k-- > 0 && n < max;) {  // newest first: keep the low chunks warm
        Entry& e = entry(k);
        ChunkHeader* c = e.chunk;
        if (c->releasing) continue;
        bool empty = e.free_pages == data_pages();
        if (empty && !c->released) {
            // A drained chunk: past the warm pool, or idle for a whole tick,
            // it goes back entirely, header pages but the first included.
            ++free_chunks;
            if (all || free_chunks > warm_chunks || (mode == Collect::kAged && c->idle_ticks >= 1)) {
                c->releasing = true;
                refresh(c);
                dirty_total -= e.dirty_pages;
                e.dirty_pages = 0;
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
        if (!e.dirty_pages) continue;
        uint64_t take[kMaxPagesPerChunk / 64];
        bool whole = mode != Collect::kAged;
        for (unsigned w = 0; w < kMaxPagesPerChunk / 64; ++w)
            take[w] = whole ? c->dirty_bits[w] : c->dirty_bits[w] & c->aged_bits[w];
        uint32_t before = e.dirty_pages;
        n += collect_runs(c, take, out + n, max - n);
        if (mode == Collect::kAged) {
            // What is still dirty now is aged at the next tick unless reused.
            for (unsigned w = 0; w < kMaxPagesPerChunk / 64; ++w) c->aged_bits[w] = c->dirty_bits[w];
        } else if (mode == Collect::kExcess) {
            uint32_t got = before - e.dirty_pages;
            excess = excess > got ? excess - got : 0;
            if (excess == 0) break;
        }
    }
    return n;
}

BTM_LATE void finish_release(const Range* r, size_t n) {
    LockGuard guard(heap_lock);
    for (size_t i = 0; i < n; ++i) {
        ChunkHeader* c = chunk_of(r[i].addr);
        if (c->releasing && r[i].len == kChunkSize - (size_t(1) << g.page_shift)) {
            // The header pages read back as zeros: a page map of free pages.
            c->releasing = false;
            c->released = true;
            c->idle_ticks = 0;
            entry_of(c).max_run = uint16_t(data_pages());
            refresh(c);
            continue;
        }
        uint32_t first = uint32_t((r[i].addr & kChunkMask) >> g.page_shift);
        uint32_t len = uint32_t(r[i].len >> g.page_shift);
        for_words(first, len, [c](uint32_t w, uint64_t m) { c->free_bits[w] |= m; });
        pages_back(c, first, len, false);
    }
}

uint64_t dirty_bytes() { return dirty_total << g.page_shift; }
uint64_t clean_taken_pages() { return __atomic_load_n(&clean_taken, __ATOMIC_RELAXED); }

// Run by the background thread only: out of the start-up window
// (tests/check_library.sh), which the merged features had filled.
[[gnu::cold]] size_t prefault_collect(Range* out, size_t max, uint64_t target) {
    LockGuard guard(heap_lock);
    // Resident free pages are what slab_alloc takes first.
    if (dirty_total >= target) return 0;
    uint64_t need = target - dirty_total;
    size_t n = 0;
    unsigned look = 0;
    auto take_clean = [&](Entry& e) {
        ChunkHeader* c = e.chunk;
        if (e.free_pages == e.dirty_pages) return false;  // no clean free page here
        for (uint32_t i = c->first_page; n < max && need;) {
            uint32_t start = next_bit(c, i, true, Pages::kClean);
            if (start >= c->npages) break;
            uint32_t end = next_bit(c, start, false, Pages::kClean);
            if (end - start > need) end = start + uint32_t(need);
            for_words(start, end - start, [c](uint32_t w, uint64_t m) { c->free_bits[w] &= ~m; });
            need -= end - start;
            e.free_pages = uint16_t(e.free_pages - (end - start));
            out[n++] = Range{reinterpret_cast<uintptr_t>(c) + (uintptr_t(start) << g.page_shift),
                             size_t(end - start) << g.page_shift};
            i = end;
        }
        refresh(c);
        return n == max || !need || ++look == kDirtyLook;
    };
    for_searchable(take_clean);
    // Nothing clean where slabs are made: map a chunk ahead of demand.  Not
    // in intern mode, where a new chunk goes to the partition that needs it.
    if (n == 0 && need && !g.intern) {
        if (ChunkHeader* c = chunk_new()) take_clean(entry_of(c));
    }
    return n;
}

BTM_LATE void finish_prefault(const Range* r, size_t n) {
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
        pages_back(c, first, len, true);
        dirty_total += len;
        c->released = false;
        c->idle_ticks = 0;
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

uint32_t stamp() { return clock_base.load(std::memory_order_relaxed) ? os::coarse_seconds() : 0; }

void start_clock() {
    if (clock_base.load(std::memory_order_relaxed)) return;
    uint32_t now = os::coarse_seconds();
    uint32_t expected = 0;
    clock_base.compare_exchange_strong(expected, now ? now : 1, std::memory_order_relaxed);
}

// The walks below serve statistics and btm_pageout_cold, never a malloc:
// cold, so the linker puts them after the code a small process runs (the
// first 64 KiB window, tests/check_library.sh).
[[gnu::cold]] size_t cold_ranges(uint32_t* cursor, uint32_t before, Range* out, size_t max) {
    LockGuard guard(heap_lock);
    const uint32_t base = clock_base.load(std::memory_order_relaxed);
    size_t n = 0;
    // Stop at a chunk boundary with room for a whole chunk's worth of ranges.
    for (; *cursor < nchunks && n + kMaxPagesPerChunk / 2 <= max; ++*cursor) {
        ChunkHeader* c = entry(*cursor).chunk;
        if (c->released) continue;
        for_each_slab(c, [&](uint32_t p, const Slab& s) {
            // A meshed source's pages are its target's: they age with it.
            if (s.list == kListMeshed) return;
            if (int32_t(before - (s.epoch ? s.epoch : base)) <= 0) return;
            uintptr_t a = reinterpret_cast<uintptr_t>(c) + (uintptr_t(p) << g.page_shift);
            size_t len = size_t(s.npages) << g.page_shift;
            if (n && out[n - 1].addr + out[n - 1].len == a) out[n - 1].len += len;
            else out[n++] = Range{a, len};
        });
    }
    return n;
}

[[gnu::cold]] void occupancy(uint64_t hist[10], uint64_t list[4]) {
    LockGuard guard(heap_lock);
    for (unsigned k = 0; k < nchunks; ++k) {
        if (entry(k).chunk->released) continue;
        for_each_slab(entry(k).chunk, [&](uint32_t, const Slab& s) {
            uint32_t cap = g_class[s.cls].capacity;
            ++hist[cap ? (s.used * 10 / cap > 9 ? 9 : s.used * 10 / cap) : 0];
            ++list[s.list & 3];
        });
    }
}

[[gnu::cold]] int backing_fd(unsigned region) { return backing_fd1[region] - 1; }
[[gnu::cold]] void set_backing_fd(unsigned region, int fd) { backing_fd1[region] = fd + 1; }

[[gnu::cold]] unsigned region_of(uintptr_t a) {
    unsigned n = nregions.load(std::memory_order_acquire);
    unsigned i = 0;
    while (i + 1 < n && a - regions[i].base >= regions[i].size) ++i;
    return i;
}

[[gnu::cold]] void mark_meshed(Slab* s) {
    LockGuard guard(heap_lock);
    ChunkHeader* c = chunk_of(s);
    uint32_t first = slab_first_page(s);
    for (uint32_t i = 0; i < s->npages; ++i)
        c->pagemap[first + i] = (c->pagemap[first + i] & ~kKindMask) | (kPageMeshed << 24);
}

[[gnu::cold]] Counters counters() {
    LockGuard guard(heap_lock);
    Counters k{};
    k.chunks = nchunks;
    k.slabs = nslabs;
    k.made = nmade;
    k.committed = uint64_t(nchunks) * kChunkSize;
    k.dirty = dirty_total << g.page_shift;
    for (unsigned i = 0; i < nchunks; ++i) k.free_chunks += entry(i).free_pages == data_pages();
    unsigned n = nregions.load(std::memory_order_relaxed);
    for (unsigned i = 0; i < n; ++i) k.reserved += regions[i].size;
    return k;
}

}  // namespace btm::chunks
