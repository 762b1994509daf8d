#include "core/central.h"

#include "core/chunk.h"
#include "core/reclaim.h"
#include "os/os.h"

namespace btm {

Central* g_central;
namespace central {
std::atomic<uint64_t>* g_used;
}  // namespace central
std::atomic<uint64_t> g_remote_queued_bytes{0};
std::atomic<uint64_t> g_kept_bytes{0};
uint32_t g_warm_slabs = 2;

namespace central {
namespace {


inline constexpr uint32_t kWarmSlabMax = 16 * 1024;
inline constexpr uint32_t kCarveBytes = 4096;  // see take()

// Slab memory in use (slabs minus the kept ones), sampled when a refill
// takes an empty or new slab: its peak over the last kPeakTicks aging
// intervals (~1 s) bounds the kept slabs, so that slabs in use and kept
// never exceed what recently was in use.  A live set that swings keeps its
// slabs through the trough; one that only turns over (burst's survivors
// replaced 200k times a second) keeps a few: keeping whatever it emptied held
// 8 MiB beside 20 MiB live (settled RSS 2.2-2.4x the live bytes, 1.7x
// without).  Slot 0 is the current interval; the ticks shift them.
inline constexpr unsigned kPeakTicks = 4;
std::atomic<uint64_t> use_peak[kPeakTicks];
uint64_t in_use() {
    uint64_t all = chunks::slab_bytes(), kept = g_kept_bytes.load(std::memory_order_relaxed);
    return all > kept ? all - kept : 0;  // two racy reads
}
// Once per slab taken: every process that makes a slab runs it, so it is
// start-up code (a cold one put the branch that calls it in take's cold
// clone, past the library's first 64 KiB: library_text_pages).
BTM_STARTUP BTM_NOINLINE void note_growth() {
    uint64_t u = in_use();
    if (u > use_peak[0].load(std::memory_order_relaxed)) use_peak[0].store(u, std::memory_order_relaxed);
}
bool within_peak() {
    uint64_t peak = 0;
    for (const auto& p : use_peak) {
        uint64_t v = p.load(std::memory_order_relaxed);
        peak = v > peak ? v : peak;
    }
    return chunks::slab_bytes() <= peak;
}

// A slot on a meshed source page, as its target's slot (and its entry).
BTM_COLD void* to_target(void* p, uint64_t* entry) {
    uintptr_t a = mesh_target(reinterpret_cast<uintptr_t>(p), *entry);
    *entry = chunk_of(a)->pagemap[(a & kChunkMask) >> g.page_shift];
    return reinterpret_cast<void*>(a);
}

// The slab a slot goes home to, and the slot's address there.  A slot
// cached under a source's address from before its slab was meshed (other
// threads' bins, remote lists) goes to the target, as the target's slot.
// Returned by value (two registers): a slot whose address were taken would
// live on the stack in the flush loops.
struct Home {
    Slab* slab;
    void* slot;
};
BTM_COLD Home home_meshed(void* p, uint64_t e) {
    void* q = to_target(p, &e);
    return Home{slab_of(reinterpret_cast<uintptr_t>(q), e), q};
}
BTM_INLINE Home home_of(void* p) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uint64_t e = chunk_of(a)->pagemap[(a & kChunkMask) >> g.page_shift];
    if (BTM_UNLIKELY(pe_kind(e) == kPageMeshed)) return home_meshed(p, e);
    return Home{slab_of(a, e), p};
}

uint64_t slab_bytes(const Slab* s) { return uint64_t(s->npages) << g.page_shift; }

// Empty slabs a pair keeps warm, uncounted and unaged while it has no other
// slab to refill from: only small ones (see reposition).
uint32_t warm_of(const Slab* s) { return slab_bytes(s) > kWarmSlabMax ? 0 : g_warm_slabs; }

void list_push(Slab*& head, Slab* s, SlabList which) {
    s->prev = nullptr;
    s->next = head;
    if (head) head->prev = s;
    head = s;
    s->list = which;
}

Slab*& list_head(Central& c, SlabList which) {
    return which == kListEmpty ? c.empty : which == kListSparse ? c.sparse : c.partial;
}

void push_sparse_tail(Central& c, Slab* s) {
    s->next = nullptr;
    s->prev = c.sparse_tail;
    if (c.sparse_tail) c.sparse_tail->next = s;
    else c.sparse = s;
    c.sparse_tail = s;
    s->list = kListSparse;
}

// A small heap's one-slot slabs serve every class (issue 22 part 2).
// glibc's brk heap reuses a freed block for the next blocks of any size;
// here a freed slot of a one-slot class (above 16 KiB) sat in the thread
// cache, its pages resident and of no use to other classes, for the
// process's life: python3 grows its dicts by malloc and free (6.5 -> 13 ->
// 26 -> 52 KB), `ls` frees a 41.6 KB copy when realloc makes its table a
// large block.  So while the heap is below partition_after (where the
// processes of a machine-wide preload stay), such a slab is marked draining
// for its pair's first kYoungRefills refills: its free goes home
// (free_home), and the slab, empty, is *parked* on its pair's empty list
// (settle_empty), where a double free still finds its slot marked free.  The
// next slab that any other pair makes in a small heap first gives the parked
// ones to the page heap (share_parked), which makes slabs on resident pages
// first.  A pair that keeps asking (a churn of one size) refills from its
// parked slab, and past those refills it caches its slot as before; its
// slabs lose the mark at their next refill.  `refills` wraps at 2^16: a pair
// that churns that long is young again for kYoungRefills refills.
inline constexpr uint16_t kYoungRefills = 64;
std::atomic<uint32_t> g_parked{0};  // parked slabs on the empty lists
bool drained(const Slab* s) { return pe_kind(chunk_of(s)->pagemap[slab_first_page(s)]) == kPageDraining; }
bool parks(const Slab* s) { return g_class[s->cls].capacity == 1 && drained(s); }

void list_remove(Central& c, Slab* s) {
    Slab*& head = list_head(c, SlabList(s->list));
    if (s->prev) s->prev->next = s->next;
    else head = s->next;
    if (s->next) s->next->prev = s->prev;
    else if (s->list == kListSparse) c.sparse_tail = s->prev;
    if (s->list == kListEmpty) {
        if (BTM_UNLIKELY(parks(s))) g_parked.fetch_sub(1, std::memory_order_relaxed);
        if (c.nempty-- > warm_of(s)) g_kept_bytes.fetch_sub(slab_bytes(s), std::memory_order_relaxed);
        if (c.nempty < c.empty_low) c.empty_low = c.nempty;
    }
    s->list = kListNone;
    s->next = s->prev = nullptr;
}

// Marks or clears the draining kind on every page of the slab.
void set_draining(Slab* s, bool on) {
    ChunkHeader* c = chunk_of(s);
    uint32_t first = slab_first_page(s);
    uint64_t kind = (on ? kPageDraining : kPageSlab) << 24;
    for (uint32_t i = 0; i < s->npages; ++i) c->pagemap[first + i] = (c->pagemap[first + i] & ~kKindMask) | kind;
}

// An empty slab as if new: its next refill carves slots in address order (a
// store each) instead of reading its free list back (a dependent cold load
// each).  Its slots have been handed out, so they no longer read as zeros;
// pages never reached stay as they were.  Mesh slabs keep their lists (a
// target's sources map onto its slots).
void rewind(Slab* s) {
    if (BTM_UNLIKELY(g.mesh)) return;
    if (s->bump == g_class[s->cls].capacity) s->fresh = 0;
    s->zero = 0;
    s->free = nullptr;
    s->free_count = 0;
    s->bump = 0;
}

// After a refill took the slot of one-slot slab s (central lock held).
// Once per slab taken by every process that makes blocks above 16 KiB
// (python3, ls): start-up code.
BTM_STARTUP BTM_NOINLINE void mark_young(const Central& c, Slab* s) {
    bool young = c.refills < kYoungRefills && chunks::small_heap();
    if (young != drained(s)) set_draining(s, young);
}

// An emptied slab stays with its pair: a live set that swings
// (bench_latency) emptied slabs on each shrink and made them again on the
// next growth, one new slab per refill (page-heap lock, a cold descriptor,
// page-map lines), and those refills were its p99.  The first warm_of() of
// them are the pair's warm slabs; the rest count as kept, and the aging
// ticks give back those that stay unused through a whole interval
// (drain_all); they fill the heap up to its recent peak in use, no further
// (use_peak).  Only warm ones without the background thread or during a
// mass free (see keeps_slabs), and a small heap's parked one-slot slabs
// (above), none with warm_slabs = 0.  Out of line (once
// per slab, not per slot) but start-up code: a short-lived python3 empties
// slabs, and a cold one mapped a second window of the library's code in it
// (library_text_pages).
BTM_STARTUP BTM_NOINLINE void settle_empty(Central& c, Slab* s) {
    bool park = parks(s);
    bool warm = c.nempty < warm_of(s) && !c.partial && !c.sparse;
    bool keep = warm || park || (within_peak() && reclaim::keeps_slabs());
    if (!g_warm_slabs || c.nempty == UINT16_MAX || !keep) {
        --c.nslabs;
        chunks::slab_free(s);
        return;
    }
    rewind(s);
    if (c.nempty++ >= warm_of(s)) g_kept_bytes.fetch_add(slab_bytes(s), std::memory_order_relaxed);
    if (BTM_UNLIKELY(park)) g_parked.fetch_add(1, std::memory_order_relaxed);
    list_push(c.empty, s, kListEmpty);
}

// Before pair `self` makes a slab in a small heap: the other pairs' parked
// slabs go to the page heap.  try_lock only: the caller holds its own
// pair's lock.  Start-up code (ls and python3 run it).
BTM_STARTUP BTM_NOINLINE void share_parked(const Central& self) {
    for_each_used([&self](Central& d) {
        if (&d == &self || !d.empty || !d.lock.try_lock()) return;
        for (Slab* s = d.empty; s;) {
            Slab* next = s->next;
            if (parks(s)) {
                list_remove(d, s);
                --d.nslabs;
                chunks::slab_free(s);
            }
            s = next;
        }
        d.lock.unlock();
    });
}

// Puts a slab on the list its state calls for (central lock held).
void reposition(Central& c, Slab* s) {
    const ClassInfo& ci = g_class[s->cls];
    bool available = s->free_count > 0 || s->bump < ci.capacity;
    SlabList want = s->used == 0       ? kListEmpty
                    : !available       ? kListNone
                    : s->used * 4 <= ci.capacity ? kListSparse
                                                : kListPartial;
    if (want == s->list) return;
    if (s->list == kListSparse) set_draining(s, false);
    if (s->list != kListNone) list_remove(c, s);
    if (want == kListEmpty) {
        settle_empty(c, s);
    } else if (want == kListSparse) {
        push_sparse_tail(c, s);
        // A pair's only slabs are its working set, not a cohort to drain.
        if (c.nslabs - c.nempty > 2) set_draining(s, true);
    } else if (want == kListPartial) {
        list_push(c.partial, s, kListPartial);
    }
}

// Remote frees pushed to a source slab before it was meshed (a thread read
// its page entry first): into the target's free list, as target slots.
BTM_COLD void drain_meshed(Central& c, Slab* s, void* chain, uint32_t n) {
    Slab* t = s->prev;
    for (uint32_t i = 0; i < n; ++i) {
        void* p = chain;
        chain = i + 1 < n ? link_decode(p) : nullptr;
        void* q = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(slab_base(t)) +
                                          (reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(slab_base(s))));
        link_encode(q, t->free);
        t->free = q;
    }
    t->free_count = uint16_t(t->free_count + n);
    t->used = uint16_t(t->used - n);
    c.out_bytes -= uint64_t(n) * g_class[t->cls].size;
    reposition(c, t);
}

// Moves every remote free queued for this pair into its slab's local list.
void drain(Central& c) {
    if (!c.remote_q.load(std::memory_order_relaxed)) return;
    Slab* s = c.remote_q.exchange(nullptr, std::memory_order_acquire);
    while (s) {
        Slab* next = s->qnext;
        // Taking the word also clears kRemoteQueued: the next push queues the
        // slab again.
        uint64_t r = s->remote.exchange(0, std::memory_order_acq_rel);
        uint32_t n = uint32_t(r >> 48);
        if (n && BTM_UNLIKELY(s->list == kListMeshed)) {
            drain_meshed(c, s, reinterpret_cast<void*>(r & kRemotePtrMask), n);
        } else if (n) {
            void* chain = reinterpret_cast<void*>(r & kRemotePtrMask);
            if (s->free) {
                void* tail = chain;
                for (uint32_t i = 1; i < n; ++i) tail = link_decode(tail);
                link_encode(tail, s->free);
            }
            s->free = chain;
            s->free_count += n;
            s->used -= n;
            c.out_bytes -= uint64_t(n) * g_class[s->cls].size;
            reposition(c, s);
        }
        s = next;
    }
}

// The push that sets kRemoteQueued owns the job of queueing the slab; the
// slab is found by a drainer only through that queue, and the drainer's
// exchange clears the bit.  So a slab is queued at most once, and never after
// a drainer has seen its last slot come home (that slot's push came first).
void push_remote(Slab* s, void* head, void* tail, uint32_t n) {
    uint64_t old = s->remote.load(std::memory_order_relaxed);
    uint64_t next;
    do {
        link_encode(tail, reinterpret_cast<void*>(old & kRemotePtrMask));
        next = ((old >> 48) + n) << 48 | reinterpret_cast<uintptr_t>(head) | kRemoteQueued;
    } while (!s->remote.compare_exchange_weak(old, next, std::memory_order_release,
                                              std::memory_order_relaxed));
    if (old & kRemoteQueued) return;
    g_remote_queued_bytes.fetch_add(uint64_t(s->npages) << g.page_shift, std::memory_order_relaxed);
    Central& c = g_central[s->bin];
    Slab* h = c.remote_q.load(std::memory_order_relaxed);
    do {
        s->qnext = h;
    } while (!c.remote_q.compare_exchange_weak(h, s, std::memory_order_release,
                                               std::memory_order_relaxed));
}

// The slab to allocate from: among the first few of a list, the one with the
// most live slots (then the lowest address), so allocations concentrate on
// full slabs and the emptiest ones are left to drain and go back.
Slab* pick(Slab* head) {
    constexpr unsigned kLook = 16;
    Slab* best = head;
    unsigned i = 0;
    for (Slab* s = head ? head->next : nullptr; s && ++i < kLook; s = s->next)
        if (s->used > best->used || (s->used == best->used && s < best)) best = s;
    return best;
}

// With mesh = on, a slab's never-used slots go out in random order (the
// Mesh paper's randomised allocation): survivors of a later mass free are
// then spread at random over each slab, which is what makes two sparse
// slabs likely to have disjoint live slots.  Fills order[0, k) with a
// random permutation of [0, k) (k cut to kShuffleMax); returns k.
inline constexpr uint32_t kShuffleMax = 256;
BTM_COLD uint32_t shuffled(uint16_t* order, uint32_t k, const Slab* s) {
    if (k > kShuffleMax) k = kShuffleMax;
    uint64_t x = (g.secret ^ reinterpret_cast<uintptr_t>(s) ^ (uint64_t(s->bump) << 48)) | 1;
    for (uint32_t i = 0; i < k; ++i) order[i] = uint16_t(i);
    for (uint32_t i = k; i > 1; --i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t j = uint32_t(x % i);
        uint16_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    return k;
}

// The slot after p on slab s's free list.  With the checks on, a link that a
// write after free or an overflow changed (even by one bit: its target is
// then a live slot, an interior address or outside the slab) ends the
// process here, before the slot reaches a bin.
BTM_INLINE void* next_free(const Slab* s, const ClassInfo& ci, void* p, uintptr_t ra) {
    void* next = link_decode(p);
    if constexpr (kHardening) {
        uint64_t off = reinterpret_cast<uintptr_t>(next) - reinterpret_cast<uintptr_t>(slab_base(s));
        bool inside = off < uint64_t(ci.capacity) * ci.size;
        // With the checks off only a link out of the heap stops (knob hardening).
        if (BTM_UNLIKELY(!inside || (g.checks && (!is_slot_start(s->cls, off) || !marked_free(next)))))
            if (g.checks || !chunks::owns(reinterpret_cast<uintptr_t>(next))) corrupted_free_list(p, next, ra);
    }
    return next;
}

// Takes up to `want` slots from the pair's slabs into out[0, want) (central
// lock held).  Returns how many it took.  With `run`, the first slab whose
// never-used slots are zero gives them all to the run instead, and the
// refill ends there.
uint32_t take(Central& c, uint32_t bin, uint32_t cls, void** out, uint32_t want, uintptr_t ra, FreshRun* run) {
    const ClassInfo& ci = g_class[cls];
    const uint32_t now = chunks::stamp();
    uint32_t got = 0;
    uint32_t carve_left = kCarveBytes;
    bool handed = false;  // a fresh run was handed over: enough for this refill
    while (got < want) {
        Slab* s = c.partial ? pick(c.partial) : c.sparse ? c.sparse : c.empty;
        if (!s) {
            // A new slab only while the refill has no slot yet: each costs
            // the page-heap lock, a cold descriptor and page-map lines and
            // fresh TLB entries, and a refill of 1 KiB slots that made up to
            // 32 KiB of them (8 slabs) took ~3.6 us, the latency p999.  The
            // bin refills again sooner, from the slab made here.
            if (got) break;
            if (BTM_UNLIKELY(g_parked.load(std::memory_order_relaxed)) && chunks::small_heap()) share_parked(c);
            s = chunks::slab_alloc(ci.npages, bin, cls);
            if (!s) break;
            ++c.nslabs;
        }
        if (!s->used) note_growth();  // an empty or new slab
        uint32_t before = got;
        if (s->free_count) {
            // The first k slots of the local list: k reads of cold links,
            // here rather than one per malloc on the hit path.
            uint32_t need = want - got;
            uint32_t k = s->free_count < need ? s->free_count : need;
            void* p = s->free;
            for (uint32_t i = 0; i < k; ++i) {
                out[got + i] = p;
                if (i + 1 < s->free_count) p = next_free(s, ci, p, ra);
            }
            s->free = k == s->free_count ? nullptr : p;
            s->free_count = uint16_t(s->free_count - k);
            got += k;
        }
        if (got < want && s->bump < ci.capacity && run && s->zero) {
            // Unwritten, the slots stay zero and off the resident set until
            // the program writes them: hand them over as they are.
            uint32_t k = uint32_t(ci.capacity) - s->bump;
            run->next = slab_base(s) + size_t(s->bump) * ci.size;
            run->left = uint16_t(k);
            run->size = ci.size;
            run->carve = ci.npages == 1;
            s->bump = ci.capacity;
            s->used += k;
            c.out_bytes += uint64_t(k) * ci.size;
            run = nullptr;
            handed = true;
        } else if (got < want && s->bump < ci.capacity) {
            char* base = slab_base(s);
            uint32_t room = uint32_t(ci.capacity) - s->bump;
            uint32_t k = room < want - got ? room : want - got;
            // Carving writes the free mark into each slot, faulting fresh
            // pages in inside this malloc (~2 us each here).  One refill carves at
            // most kCarveBytes of fresh slabs (at least one slot), so it
            // faults at most a page or two: a refill of 1 KiB slots used to
            // carve 8 one-page slabs, 16 us, and such refills made the
            // latency p999.  Resident (reused dirty) pages carve freely.
            if (s->fresh) {
                uint32_t budget = carve_left / ci.size ? carve_left / ci.size : got ? 0 : 1;
                if (k > budget) k = budget;
                carve_left = budget == k ? 0 : carve_left - k * ci.size;
            }
            uint16_t order[kShuffleMax];
            if (BTM_UNLIKELY(g.mesh)) k = shuffled(order, k, s);
            for (uint32_t i = 0; i < k; ++i) {
                char* p = base + size_t(s->bump + (g.mesh ? order[i] : i)) * ci.size;
                if constexpr (kHardening) mark_free(p);  // free checks it
                out[got + i] = p;
            }
            s->bump += k;
            got += k;
        }
        s->used += got - before;
        s->site = ra;
        s->epoch = now;
        reposition(c, s);
        if (ci.capacity == 1) mark_young(c, s);
        if (carve_left == 0 && got) break;  // the rest of the refill would be fresh pages
        if (handed) break;
    }
    c.out_bytes += uint64_t(got) * ci.size;
    return got;
}

}  // namespace

namespace {
SpinLock registry_lock;
}  // namespace

void use(Central& c) {
    if (BTM_LIKELY(c.registered.load(std::memory_order_acquire))) return;
    LockGuard guard(registry_lock);
    if (c.registered.load(std::memory_order_relaxed)) return;
    uint32_t bin = uint32_t(&c - g_central);
    g_used[bin >> kClassBits].fetch_or(uint64_t(1) << (bin & 63), std::memory_order_release);
    c.registered.store(true, std::memory_order_release);
}

void lock_registry() { registry_lock.lock(); }
bool lock_held() {
    bool held = registry_lock.is_locked();
    for_each_used([&](Central& c) { held = held || c.lock.is_locked(); });
    return held;
}
void unlock_registry(bool child) {
    if (child) registry_lock.reset();
    else registry_lock.unlock();
}

void* refill(Bin* b, uint32_t bin, uint32_t cls, uint32_t want, uintptr_t ra, FreshRun* run) {
    Central& c = g_central[bin];
    use(c);
    uint32_t got;
    if ((run && run->left) || g.mesh) run = nullptr;  // mesh: runs hand slots out in order
    {
        LockGuard guard(c.lock);
        ++c.refills;
        drain(c);
        got = take(c, bin, cls, b->slots, want + 1, ra, run);
    }
    if (!got) return nullptr;  // out of memory, or all went into the run
    b->count = got - 1;
    return b->slots[got - 1];
}

void return_run(uint32_t bin, FreshRun* run) {
    if (!run->left) return;
    Central& c = g_central[bin];
    uintptr_t a = reinterpret_cast<uintptr_t>(run->next);
    LockGuard guard(c.lock);
    // Nobody carves a slab whose bump is at its capacity, so the run is still
    // the slab's tail.
    Slab* s = slab_of(a, chunk_of(a)->pagemap[(a & kChunkMask) >> g.page_shift]);
    s->bump = uint16_t(s->bump - run->left);
    s->used = uint16_t(s->used - run->left);
    c.out_bytes -= uint64_t(run->left) * run->size;
    run->left = 0;
    reposition(c, s);
}

void* alloc_one(uint32_t bin, uint32_t cls, uintptr_t ra) {
    Central& c = g_central[bin];
    use(c);
    void* p = nullptr;
    LockGuard guard(c.lock);
    drain(c);
    return take(c, bin, cls, &p, 1, ra, nullptr) ? p : nullptr;
}


namespace {

// Returns the n slots of v to their slabs (central lock held); returns how
// many landed in slabs that are now at most a quarter full.
uint32_t free_local(Central& c, void* const* v, uint32_t n) {
    uint32_t cap = n ? g_class[class_of_central(c)].capacity : 0;
    const uint32_t now = n ? chunks::stamp() : 0;
    uint32_t thin = 0;
    Slab* prev = nullptr;
    for (uint32_t i = 0; i < n; ++i) {
        Home h = home_of(v[i]);
        void* p = h.slot;
        Slab* s = h.slab;
        link_encode(p, s->free);
        s->free = p;
        ++s->free_count;
        --s->used;
        s->epoch = now;
        thin += s->used * 4 <= cap;
        if (s != prev && prev) reposition(c, prev);
        prev = s;
    }
    if (prev) reposition(c, prev);
    return thin;
}

// Returns the n slots of v to their slabs' remote lists, one CAS per run of
// slots of the same slab; a few runs stay open at once because consecutive
// frees usually come from a few slabs.
void free_remote(void* const* v, uint32_t n) {
    struct Group {
        Slab* slab;
        void* head;
        void* tail;
        uint32_t n;
    };
    constexpr unsigned kOpen = 4;
    Group open[kOpen];
    unsigned nopen = 0, victim = 0;
    for (uint32_t i = 0; i < n; ++i) {
        Home h = home_of(v[i]);
        void* p = h.slot;
        Slab* s = h.slab;
        unsigned j = 0;
        while (j < nopen && open[j].slab != s) ++j;
        if (j == nopen) {
            if (nopen < kOpen) {
                ++nopen;
            } else {
                j = victim;
                victim = (victim + 1) % kOpen;
                push_remote(open[j].slab, open[j].head, open[j].tail, open[j].n);
            }
            open[j] = Group{s, p, p, 1};
            continue;
        }
        link_encode(p, open[j].head);
        open[j].head = p;
        ++open[j].n;
    }
    for (unsigned j = 0; j < nopen; ++j) push_remote(open[j].slab, open[j].head, open[j].tail, open[j].n);
}

}  // namespace

bool flush(Bin* b, uint32_t bin, uint32_t keep) {
    if (b->count <= keep) return false;
    // Send home the most recently freed slots, the top of the stack: the
    // links written into them land on lines still in cache, and the older
    // slots stay cached without being touched at all.
    void* const* rest = b->slots + keep;
    uint32_t n = b->count - keep;
    b->count = keep;
    // Every slot of a bin belongs to the bin's own pair.
    Central& c = g_central[bin];
    if (!c.lock.try_lock()) {
        free_remote(rest, n);
        return false;
    }
    c.out_bytes -= uint64_t(n) * g_class[class_of_central(c)].size;
    uint32_t thin = free_local(c, rest, n);
    bool shrinking = c.refills == c.refills_at_flush && thin * 2 >= n;
    if (shrinking && b->count) {
        // The slots the bin kept would pin slabs that are emptying: a bin
        // that then goes idle (its thread sleeps, or only frees elsewhere)
        // never flushes again.  Send them home too.
        uint32_t k = b->count;
        c.out_bytes -= uint64_t(k) * g_class[class_of_central(c)].size;
        b->count = 0;
        free_local(c, b->slots, k);
    }
    drain(c);
    c.refills_at_flush = c.refills;
    c.lock.unlock();
    return shrinking;
}

void free_home(void* p, uint64_t entry) {
    if (pe_kind(entry) == kPageMeshed) p = to_target(p, &entry);
    if constexpr (kHardening) mark_free(p);
    Central& c = g_central[pe_bin(entry)];
    if (c.lock.try_lock()) {
        c.out_bytes -= g_class[pe_class(entry)].size;
        free_local(c, &p, 1);  // one slot: whether its slab thinned does not matter
        c.lock.unlock();
    } else {
        push_remote(slab_of(reinterpret_cast<uintptr_t>(p), entry), p, p, 1);
    }
}

[[gnu::cold]] uint32_t mesh_candidates(Central& c, Slab** out, uint32_t max) {
    drain(c);
    uint32_t n = 0;
    for (Slab* head : {c.partial, c.sparse})
        for (Slab* s = head; s && n < max; s = s->next) out[n++] = s;
    return n;
}

[[gnu::cold]] void mesh_retire(Central& c, Slab* s) {
    if (s->list == kListSparse) set_draining(s, false);
    if (s->list != kListNone) list_remove(c, s);
    --c.nslabs;
}

[[gnu::cold]] void mesh_settle(Central& c, Slab* t) { reposition(c, t); }

namespace {

void release_empty(Central& c, Slab* s) {
    list_remove(c, s);
    --c.nslabs;
    chunks::slab_free(s);
}

// Gives back the empty slabs that no refill took since the last tick (the
// list never got shorter than empty_low; refills take from its head, so
// those are at its tail), but the warm ones of a pair with nothing else.
BTM_COLD void release_aged(Central& c) {
    uint32_t keep = c.partial || c.sparse || !c.empty ? 0 : warm_of(c.empty);
    if (c.nempty <= keep) return;
    uint32_t n = c.nempty - keep < c.empty_low ? c.nempty - keep : c.empty_low;
    Slab* s = c.empty;
    while (s && s->next) s = s->next;
    while (n--) {
        Slab* prev = s->prev;
        release_empty(c, s);
        s = prev;
    }
}

}  // namespace

// Cold: aging ticks and malloc_trim run it, no refill or flush (the
// start-up code stays in the library's first 64 KiB, check_library.sh).
BTM_COLD void drain_all(bool all) {
    g_remote_queued_bytes.store(0, std::memory_order_relaxed);
    for (unsigned i = kPeakTicks - 1; i > 0; --i)
        use_peak[i].store(use_peak[i - 1].load(std::memory_order_relaxed), std::memory_order_relaxed);
    use_peak[0].store(in_use(), std::memory_order_relaxed);
    for_each_used([all](Central& c) {
        bool idle = c.nempty && (all || c.refills == c.refills_seen);
        c.refills_seen = c.refills;
        if (!c.remote_q.load(std::memory_order_relaxed) && !c.nempty) return;  // empty_low stays 0
        LockGuard guard(c.lock);
        drain(c);
        if (all || (idle && c.refills == c.refills_seen)) {  // else a refill raced in
            while (Slab* s = c.empty) release_empty(c, s);
        } else {
            release_aged(c);
        }
        c.empty_low = c.nempty;
    });
}

}  // namespace central
}  // namespace btm
