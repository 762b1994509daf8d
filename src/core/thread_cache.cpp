#include "core/thread_cache.h"

#include <pthread.h>

#include <atomic>

#include "core/central.h"
#include "core/lock.h"
#include "core/orphan.h"
#include "core/reclaim.h"
#include "os/os.h"

namespace btm {

// The placeholder only has to read as empty (null heads, max 0) for the bins
// the fast paths can index: npart << kClassBits of them.  The static one is
// sized for the default 64 partitions (64 KiB of .lbss), not for the 1,024
// the knob allows (1 MiB: address space every process paid for, and under
// RLIMIT_AS what kept small programs from starting where they start under
// glibc, issue 22).  Its storage is declared in assembly because the type
// the fast paths index, ThreadCache, is the 1 MiB one.  A configuration with
// more partitions maps a larger one at init (prepare_placeholder).
inline constexpr unsigned kStaticPartitions = 64;
#define BTM_STATIC_PLACEHOLDER_BYTES 65536
inline constexpr size_t kStaticPlaceholderBytes = (size_t(kStaticPartitions) << kClassBits) * sizeof(Bin);
// As the compiler names the section of BTM_COLD_BSS data (the assembler
// knows .lbss and .bss by name).
#if defined(__x86_64__)
#define BTM_PLACEHOLDER_SECTION ".lbss,\"aw\""
#else
#define BTM_PLACEHOLDER_SECTION ".bss,\"aw\""
#endif
#define BTM_STR2(x) #x
#define BTM_STR(x) BTM_STR2(x)
extern "C" ThreadCache btm_static_placeholder __attribute__((visibility("hidden")));
__asm__(".pushsection " BTM_PLACEHOLDER_SECTION "\n"
        ".p2align 12\n"
        ".hidden btm_static_placeholder\n"
        ".type btm_static_placeholder, @object\n"
        ".size btm_static_placeholder, " BTM_STR(BTM_STATIC_PLACEHOLDER_BYTES) "\n"
        "btm_static_placeholder:\n"
        ".zero " BTM_STR(BTM_STATIC_PLACEHOLDER_BYTES) "\n"
        ".popsection");
static_assert(kStaticPlaceholderBytes == BTM_STATIC_PLACEHOLDER_BYTES);

__thread ThreadState t_state __attribute__((tls_model("initial-exec"))) = {&btm_static_placeholder, 0, Phase::kNone, 0, nullptr};
ThreadCache* g_placeholder_tc = &btm_static_placeholder;

namespace tcache {
namespace {

inline constexpr unsigned kMaxActive = 256;
inline constexpr unsigned kScavengePeriod = 64;

// Lives just below the bins of a real cache.
struct alignas(64) Header {
    Header* next_free;       // recycled caches
    FreshRun* runs;          // one per bin past the first partition's, after the bins
    uint64_t* refilled;      // a bit per bin: refilled since the last scavenge (after the runs)
    uint64_t* wide;          // a bit per bin: its stack holds grown_slots() (after `refilled`)
    // Where the next bin's stack is cut from: first the cache's own tail
    // (room for one partition's stacks, after `refilled`), then mappings of
    // kArenaBlock.  A bin keeps its stack for the cache's life (recycled
    // caches too), so nothing is ever given back.
    char* arena;
    char* arena_end;
    uint32_t nactive;
    uint32_t events;         // slow-path events since the last scavenge
    uint32_t refills;        // refills since the last scavenge
    uint32_t big_refills;    // of them, of classes whose slabs span several pages
    uint64_t budget;         // this thread's budget now: see scavenge
    uint64_t grown_bytes;    // the bins' limits above their two batches, in bytes: see grow
    bool overflow;           // more than kMaxActive bins in use: scan them all
    uint32_t active[kMaxActive];
    // The first partition's runs, on the page of its bins: a small process
    // uses no other partition (knob partition_after), and a separate page
    // cost it two page faults.
    FreshRun runs0[1u << kClassBits];
};

SpinLock pool_lock;
Header* pool;                // caches of exited threads, ready for reuse
std::atomic<uint64_t> nlive{0};
std::atomic<void*> first_cache{nullptr};  // memory for one cache, taken by the first thread
pthread_key_t key;
uint64_t budget_max = 1 << 20;  // knob tcache_bytes
// Where a thread's budget starts (or the knob, if lower).
inline constexpr uint64_t kStartBudget = 1 << 20;
uint64_t start_budget() { return budget_max < kStartBudget ? budget_max : kStartBudget; }

Header* header_of(ThreadCache* tc) { return reinterpret_cast<Header*>(tc) - 1; }
FreshRun* run_of(Header* h, uint32_t bin) { return bin < (1u << kClassBits) ? &h->runs0[bin] : &h->runs[bin]; }
ThreadCache* cache_of(Header* h) { return reinterpret_cast<ThreadCache*>(h + 1); }
size_t nbins() { return size_t(g.npart) << kClassBits; }
uint32_t class_of_bin(uint32_t bin) { return bin & ((1u << kClassBits) - 1); }
size_t refilled_words() { return (nbins() + 63) / 64; }
bool wide(Header* h, uint32_t bin) { return h->wide[bin / 64] >> (bin % 64) & 1; }
// A bin's stack holds its limit: two batches, or grown_slots() once the bin
// has grown (its `wide` bit).
uint32_t stack_slots(uint32_t cls) { return 2u * g_class[cls].batch; }
// What a hot bin may grow to: 256 KiB of slots, and a refill (half a bin) of
// at most 16, since a refill that cuts slots off a free list reads each one
// (a dependent cold load).  Only classes whose slabs span several pages
// (above 1 KiB): the smaller ones' batches are 32-128 slots already, and
// their cached slots lie one or two to a page, so bigger bins of them pin
// pages (the burst workload's survivors).
inline constexpr uint32_t kGrownBytes = 256 * 1024, kGrownSlots = 32;
uint32_t grown_slots(uint32_t cls) {
    uint32_t base = stack_slots(cls);
    if (g_class[cls].npages == 1) return base;
    uint32_t n = kGrownBytes / g_class[cls].size;
    n = n < kGrownSlots ? n : kGrownSlots;
    return n > base ? n : base;
}
size_t own_arena_bytes() {
    size_t n = 0;
    for (uint32_t cls = 0; cls < kNumClasses; ++cls) n += stack_slots(cls) * sizeof(void*);
    return n;
}
bool refilled(Header* h, uint32_t bin) { return h->refilled[bin / 64] >> (bin % 64) & 1; }
void clear_refilled(Header* h) {
    for (size_t i = 0; i < refilled_words(); ++i) h->refilled[i] = 0;
}
uint64_t grown_part(uint32_t max, uint32_t cls) {
    uint32_t base = stack_slots(cls);
    return max > base ? uint64_t(max - base) * g_class[cls].size : 0;
}
// Every change of a bin's limit that may cross its two batches (growth,
// shrinking), so that grown_bytes stays exact; changes below two batches
// (activate, free_slow's regrowth) leave it alone and may set max directly.
void set_max(Header* h, Bin* b, uint32_t cls, uint32_t max) {
    h->grown_bytes += grown_part(max, cls) - grown_part(b->max, cls);
    b->max = max;
}

void on_thread_exit(void* arg) {
    auto* tc = static_cast<ThreadCache*>(arg);
    ThreadState& t = t_state;
    if (t.tc != tc || orphaned()) return;  // orphaned: the cache and its slots leak
    ++t.depth;
    flush_all();
    t.tc = g_placeholder_tc;
    t.phase = Phase::kDead;
    Header* h = header_of(tc);
    {
        LockGuard guard(pool_lock);
        h->next_free = pool;
        pool = h;
    }
    nlive.fetch_sub(1, std::memory_order_relaxed);
    --t.depth;
}

// Slots at least this big leave the cache first when it is over budget.
inline constexpr uint32_t kBigSlot = 32 * 1024;

// A grown bin that did not refill for a whole period goes back to two
// batches (see grow): a class that went quiet pins nothing more.  BTM_LATE,
// like grow: only a process with hot bins above 1 KiB has grown bins, and
// the library's first 64 KiB are kept for what every process runs.
BTM_LATE BTM_NOINLINE void shrink_grown(ThreadCache* tc, size_t n) {
    Header* h = header_of(tc);
    for (size_t i = 0; h->grown_bytes && i < n; ++i) {
        uint32_t bin = h->overflow ? uint32_t(i) : h->active[i];
        uint32_t cls = class_of_bin(bin), base = stack_slots(cls);
        Bin* b = &tc->bins[bin];
        if (b->max <= base || refilled(h, bin)) continue;
        central::flush(b, bin, base);
        set_max(h, b, cls, base);
    }
}

// When the cache holds more than its budget, slots go home in four steps,
// stopping after the first that brings the cache under half of it: the bins
// that did not refill since the last scavenge (their slots sat unused)
// before the ones that did, and within each the bins of big slots whole (a
// few of those hold most of the bytes, and a refill costs them little per
// byte) before the others halved.  Halving everything at once doubled the
// small-class refills of a program that also allocates a few blocks of
// 100 KiB-1 MiB now and then.
//
// The budget itself adapts, between start_budget() and the knob: a cache
// found over it while a quarter of the period's slow-path events were
// refills of classes whose slabs span several pages (above 1 KiB) is
// thrashing, and the budget doubles; a period with no refill at all (the
// thread stopped allocating), or a cache under a quarter of its budget,
// halves it again.  A mixed-size program whose cache settles at ~2.7 MiB
// (bench_mtstress: 16 B-128 KiB blocks from three call sites) sent ~1.7 MiB
// home at every scavenge under a fixed 1 MiB, making and releasing whole
// slabs of big slots, and spent twice a peer's instructions in the
// allocator.  Small classes do not count: their cached slots are scattered
// one or two to a page, so a bigger budget for them pins pages, not bytes
// (counting them, the burst workload's steady replacement of 16-1024 B
// survivors grew the budget to 4 MiB and its settled RSS from 1.73x to 2.2x
// the live bytes).
void scavenge(ThreadCache* tc) {
    Header* h = header_of(tc);
    h->events = 0;
    auto is_big = [](uint32_t bin) { return g_class[class_of_bin(bin)].size >= kBigSlot; };
    auto step_of = [&](uint32_t bin) { return (refilled(h, bin) ? 2 : 0) + (is_big(bin) ? 0 : 1); };
    size_t n = h->overflow ? nbins() : h->nactive;
    if (h->grown_bytes) shrink_grown(tc, n);
    // Bytes each step would send home.
    uint64_t total = 0, freed[4] = {};
    for (size_t i = 0; i < n; ++i) {
        uint32_t bin = h->overflow ? uint32_t(i) : h->active[i];
        const Bin& b = tc->bins[bin];
        uint64_t slot = g_class[class_of_bin(bin)].size;
        total += b.count * slot;
        freed[step_of(bin)] += (is_big(bin) ? b.count : b.count - b.count / 2) * slot;
    }
    bool thrashing = h->big_refills * 4 >= kScavengePeriod, idle = h->refills == 0;
    h->refills = h->big_refills = 0;
    if (total > h->budget && thrashing && h->budget < budget_max)
        h->budget = h->budget * 2 < budget_max ? h->budget * 2 : budget_max;
    else if ((idle || total < h->budget / 4) && h->budget > start_budget())
        h->budget /= 2;
    // Down to half the budget, as halving every bin did: the next scavenge
    // then finds it over budget only if the cache really grew meanwhile.
    int last = -1;
    if (total > h->budget)
        while (total > h->budget / 2 && last < 3) total -= freed[++last];
    for (size_t i = 0; last >= 0 && i < n; ++i) {
        uint32_t bin = h->overflow ? uint32_t(i) : h->active[i];
        Bin* b = &tc->bins[bin];
        if (step_of(bin) <= last) central::flush(b, bin, is_big(bin) ? 0 : b->count / 2);
    }
    clear_refilled(h);
}

// Bins start small and double their limit on each refill up to two batches
// (slow start): a thread that allocates a few objects of a class carves a
// few slots, not a whole batch.
inline constexpr uint32_t kFirstMax = 8;
inline constexpr size_t kArenaBlock = 64 * 1024;

// A stack of `slots` pointers from the cache's arena, or null.
void** cut_stack(Header* h, uint32_t slots) {
    size_t bytes = slots * sizeof(void*);
    if (size_t(h->arena_end - h->arena) < bytes) {
        auto* m = static_cast<char*>(os::map(kArenaBlock));
        if (!m) return nullptr;
        h->arena = m;
        h->arena_end = m + kArenaBlock;
    }
    auto* s = reinterpret_cast<void**>(h->arena);
    h->arena += bytes;
    return s;
}

// Starts a bin: its stack (unless a previous thread of a recycled cache
// left it one) and its limit.  False when there is no memory for the stack:
// the bin stays unused and the caller does without it.
bool activate(ThreadCache* tc, Bin* b, uint32_t bin, uint32_t cls) {
    Header* h = header_of(tc);
    uint32_t full = stack_slots(cls);
    if (!b->slots && !(b->slots = cut_stack(h, full))) return false;
    b->max = full < kFirstMax ? full : kFirstMax;
    if (h->nactive < kMaxActive) h->active[h->nactive++] = bin;
    else h->overflow = true;
    return true;
}

// A bin at two batches that refills again within a scavenge period doubles
// its limit, up to grown_slots(), so its refills take twice the slots: the
// 1-16 KiB classes' bins of 2-32 slots made most of bench_latency's slow
// mallocs (10-16 KiB alone 40% of its refills, ~3 slots each), and the 99th
// percentile of its mallocs was a refill.  The limits above two batches add
// up to half the thread's budget at most; a grown bin gets a stack of its
// own, once (the old one stays unused: at most 256 bytes), and goes back to
// two batches at the first scavenge that finds it did not refill (scavenge).
// The bin is empty here (its refill comes next), so nothing is copied.
// Not in a small heap (chunks::small_heap): the short-lived processes of a
// machine-wide preload keep their bins at two batches, which pins less, and
// so never run this code, which lies past the library's first 64 KiB
// (library_text_pages: python3 grew bins at start and mapped it).
BTM_LATE BTM_NOINLINE void grow(Header* h, Bin* b, uint32_t bin, uint32_t cls) {
    uint32_t cap = grown_slots(cls), next = b->max * 2 < cap ? b->max * 2 : cap;
    if (next <= b->max || h->grown_bytes + grown_part(next, cls) - grown_part(b->max, cls) > h->budget / 2) return;
    if (!wide(h, bin)) {
        void** s = cut_stack(h, cap);
        if (!s) return;
        b->slots = s;
        h->wide[bin / 64] |= uint64_t(1) << (bin % 64);
    }
    set_max(h, b, cls, next);
}

// Slow-path events of both kinds count, but the scavenge falls to the next
// free's slow path: frees are what grow a cache past its budget, and a
// scavenge that halves the bins takes ~12 us (~20 slots sent home per bin,
// each touching its cold slab descriptor), a spike programs would wait for
// inside malloc.  A thread that stopped freeing scavenges in malloc, three
// periods late.
void note_event(ThreadCache* tc, bool freeing) {
    uint32_t events = ++header_of(tc)->events;
    if (events >= (freeing ? kScavengePeriod : 4 * kScavengePeriod)) scavenge(tc);
}

}  // namespace

// Before any thread but the caller exists (init runs in the first malloc,
// and glibc's pthread_create allocates before it clones), so the calling
// thread is the only one that took the static placeholder from the image.
BTM_STARTUP uint32_t prepare_placeholder(uint32_t npart) {
    size_t bytes = (size_t(npart) << kClassBits) * sizeof(Bin);
    if (bytes <= kStaticPlaceholderBytes) return npart;
    auto* big = static_cast<ThreadCache*>(os::map(bytes));
    if (big && os::retarget_tls_word(reinterpret_cast<uintptr_t>(&btm_static_placeholder),
                                     reinterpret_cast<uintptr_t>(big))) {
        g_placeholder_tc = big;
        if (t_state.tc == &btm_static_placeholder) t_state.tc = big;
        return npart;
    }
    if (big) os::unmap(big, bytes);
    static const char kWarn[] = "btmalloc: no memory for the empty thread cache of that many partitions: using 64\n";
    os::write_all(2, kWarn, sizeof kWarn - 1);
    return kStaticPartitions;
}

size_t cache_bytes() {
    return sizeof(Header) + nbins() * sizeof(Bin) + (nbins() - (1u << kClassBits)) * sizeof(FreshRun) +
           2 * refilled_words() * sizeof(uint64_t) + own_arena_bytes();
}

void init(uint64_t tcache_bytes, void* first) {
    budget_max = tcache_bytes;
    first_cache.store(first, std::memory_order_relaxed);
    pthread_key_create(&key, on_thread_exit);
}

bool thread_start() {
    ThreadState& t = t_state;
    t.phase = Phase::kStarting;
    Header* h = nullptr;
    {
        LockGuard guard(pool_lock);
        if (pool) {
            h = pool;
            pool = h->next_free;
        }
    }
    if (h) {
        // A recycled cache is empty (flushed at its thread's exit); reset the
        // bins it used so they re-learn their limits.
        ThreadCache* tc = cache_of(h);
        size_t n = h->overflow ? nbins() : h->nactive;
        for (size_t i = 0; i < n; ++i) tc->bins[h->overflow ? i : h->active[i]].max = 0;
        h->nactive = 0;
        h->overflow = false;
        clear_refilled(h);
    } else {
        h = static_cast<Header*>(first_cache.exchange(nullptr, std::memory_order_acq_rel));
        if (!h) h = static_cast<Header*>(os::map(cache_bytes()));
        if (!h) {
            t.phase = Phase::kNone;
            return false;
        }
        h->runs = reinterpret_cast<FreshRun*>(&cache_of(h)->bins[nbins()]) - (1u << kClassBits);
        h->refilled = reinterpret_cast<uint64_t*>(h->runs + nbins());
        h->wide = h->refilled + refilled_words();
        h->arena = reinterpret_cast<char*>(h->wide + refilled_words());
        h->arena_end = h->arena + own_arena_bytes();
    }
    h->events = 0;
    h->refills = h->big_refills = 0;
    h->budget = start_budget();
    h->grown_bytes = 0;
    ThreadCache* tc = cache_of(h);
    // May allocate (keys past the first 32): such a nested call is served
    // from the boot arena because t.depth > 0.
    pthread_setspecific(key, tc);
    nlive.fetch_add(1, std::memory_order_relaxed);
    t.tc = tc;
    t.phase = Phase::kLive;
    return true;
}

void* refill(uint32_t bin, uint32_t cls, uintptr_t ra) {
    ThreadCache* tc = t_state.tc;
    if (tc == g_placeholder_tc) return central::alloc_one(bin, cls, ra);
    Bin* b = &tc->bins[bin];
    if (b->count) return b->slots[--b->count];  // the cache was just created by our caller's retry
    Header* h = header_of(tc);
    if (b->max == 0) {
        if (!activate(tc, b, bin, cls)) return central::alloc_one(bin, cls, ra);
    } else if (uint32_t full = stack_slots(cls); b->max < full) {
        set_max(h, b, cls, b->max * 2 < full ? b->max * 2 : full);
    } else if (refilled(h, bin) && !chunks::small_heap()) {
        grow(h, b, bin, cls);
    }
    h->refilled[bin / 64] |= uint64_t(1) << (bin % 64);
    ++h->refills;
    if (g_class[cls].npages > 1) ++h->big_refills;
    note_event(tc, false);
    return central::refill(b, bin, cls, b->max / 2, ra, run_of(header_of(tc), bin));
}

void* run_pop(uint32_t bin, bool first) {
    ThreadCache* tc = t_state.tc;
    if (tc == g_placeholder_tc) return nullptr;
    FreshRun& r = *run_of(header_of(tc), bin);
    if (!r.left) return nullptr;
    char* p = r.next;
    r.next += r.size;
    --r.left;
    if (r.carve && !first && r.left) {
        // The bin is empty (this is its slow path).
        Bin* b = &tc->bins[bin];
        uint32_t k = r.left < b->max ? r.left : b->max;
        for (uint32_t i = 0; i < k; ++i) {
            if constexpr (kHardening) mark_free(r.next);  // free checks it
            b->slots[i] = r.next;
            r.next += r.size;
        }
        b->count = k;
        r.left = uint16_t(r.left - k);
    }
    return p;
}

void free_slow(void* p, uint64_t entry) {
    if (BTM_UNLIKELY(orphaned())) return;  // the slot leaks: its slab's locks may never be free
    ThreadState& t = t_state;
    // A thread that only frees (a consumer) needs a cache as much as one that
    // allocates: without it every free would be one CAS on the slab.
    if (t.tc == g_placeholder_tc && t.phase == Phase::kNone && t.depth == 0) {
        ++t.depth;
        thread_start();
        --t.depth;
    }
    ThreadCache* tc = t.tc;
    if (tc == g_placeholder_tc) {
        central::free_home(p, entry);
        return;
    }
    uint32_t bin = pe_bin(entry);
    Bin* b = &tc->bins[bin];
    ++t.depth;
    uint32_t full = stack_slots(pe_class(entry));
    if (b->max == 0) {
        if (!activate(tc, b, bin, pe_class(entry))) {
            --t.depth;
            central::free_home(p, entry);
            return;
        }
    } else if (central::flush(b, bin, b->max / 2)) {
        set_max(header_of(tc), b, pe_class(entry), b->max > 1 ? b->max / 2 : 1);  // shrinking: cache less
    } else if (b->max < full) {
        b->max = b->max * 2 < full ? b->max * 2 : full;
    }
    note_event(tc, true);
    --t.depth;
    b->slots[b->count++] = p;
    reclaim::poll(true);
}

void flush_all() {
    ThreadCache* tc = t_state.tc;
    if (tc == g_placeholder_tc) return;
    Header* h = header_of(tc);
    size_t n = h->overflow ? nbins() : h->nactive;
    for (size_t i = 0; i < n; ++i) {
        uint32_t bin = h->overflow ? uint32_t(i) : h->active[i];
        central::flush(&tc->bins[bin], bin, 0);
        central::return_run(bin, run_of(h, bin));
    }
}

uint64_t live_caches() { return nlive.load(std::memory_order_relaxed); }

void fork_prepare() { pool_lock.lock(); }
bool lock_held() { return pool_lock.is_locked(); }
void fork_parent() { pool_lock.unlock(); }
void fork_child() {
    pool_lock.reset();
    // Only the forking thread survives; its cache stays valid.  The other
    // threads' caches are lost with their cached slots (bounded by
    // tcache_bytes each), as with every thread-caching allocator.
    nlive.store(t_state.tc == g_placeholder_tc ? 0 : 1, std::memory_order_relaxed);
}

}  // namespace tcache
}  // namespace btm
