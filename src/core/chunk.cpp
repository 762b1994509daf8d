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
            for (uint32_t i = header_pages; i < c->npages; ++i) c->free_bits[i / 64] |= uint64_t(1) << (i % 64);
            registry[nchunks++] = c;
            avail_push(c);
            return c;
        }
        if (!reserve_region(regions[0].size)) return nullptr;
    }
}

// First fit: the lowest run of n free pages, or -1.
int find_run(const ChunkHeader* c, uint32_t n) {
    uint32_t run = 0;
    for (uint32_t i = c->first_page; i < c->npages;) {
        uint64_t word = c->free_bits[i / 64] >> (i % 64);
        if (word == 0) {  // nothing free in the rest of this word
            run = 0;
            i = (i | 63) + 1;
            continue;
        }
        if (word & 1) {
            if (++run == n) return int(i + 1 - n);
            ++i;
        } else {
            run = 0;
            i += unsigned(__builtin_ctzll(word));
        }
    }
    return -1;
}

}  // namespace

bool init(uint64_t want_bytes) {
    size_t page = size_t(1) << g.page_shift;
    header_pages = uint32_t((sizeof(ChunkHeader) + page - 1) / page);
    registry = static_cast<ChunkHeader**>(os::map(kMaxChunks * sizeof(ChunkHeader*)));
    if (!registry) return false;
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
    for (; c; c = c->avail_next) {
        if (c->free_pages < npages) continue;
        first = find_run(c, npages);
        if (first >= 0) break;
    }
    if (!c) {
        c = chunk_new();
        if (!c) return nullptr;
        first = find_run(c, npages);
    }
    for (uint32_t i = 0; i < npages; ++i) {
        uint32_t p = uint32_t(first) + i;
        c->free_bits[p / 64] &= ~(uint64_t(1) << (p % 64));
        c->pagemap[p] = page_entry(bin, i, cls, g.page_shift);
    }
    c->free_pages -= npages;
    if (c->free_pages == 0) avail_remove(c);
    Slab* s = &c->slabs[first];
    s->free = nullptr;
    s->free_count = 0;
    s->bump = 0;
    s->used = 0;
    s->bin = bin;
    s->npages = uint16_t(npages);
    s->cls = uint8_t(cls);
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
    for (uint32_t i = 0; i < s->npages; ++i) {
        uint32_t p = first + i;
        c->pagemap[p] = 0;
        c->free_bits[p / 64] |= uint64_t(1) << (p % 64);
    }
    c->free_pages += s->npages;
    if (!c->in_avail) avail_push(c);
    --nslabs;
}

void lock_all() { heap_lock.lock(); }
void unlock_all(bool child) {
    if (child) heap_lock.reset();
    else heap_lock.unlock();
}

Counters counters() {
    LockGuard guard(heap_lock);
    Counters k{};
    k.chunks = nchunks;
    k.slabs = nslabs;
    k.committed = uint64_t(nchunks) * kChunkSize;
    unsigned n = nregions.load(std::memory_order_relaxed);
    for (unsigned i = 0; i < n; ++i) k.reserved += regions[i].size;
    return k;
}

}  // namespace btm::chunks
