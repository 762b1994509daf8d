#include "core/boot.h"

#include "core/base.h"
#include "core/lock.h"
#include "os/os.h"

namespace btm::boot {
namespace {

// The start-up phase's largest budget (knob startup_bytes, 512 KiB) and
// 128 KiB for nested calls after it; a process without a heap fills all but
// kNestedReserve.  Address space under RLIMIT_AS: 1 MiB kept `ls` from
// loading where it loads under glibc (issue 22).
inline constexpr size_t kArenaBytes = kBytes;
inline constexpr size_t kGranule = 16;
inline constexpr size_t kMarkSpan = 64 * kGranule;  // arena bytes one pair of mark words covers

// One page holds the bump pointer, the first blocks and their marks: a
// process that stays small (a few KiB of blocks) touches one page of the
// arena, and one that takes up to kLeadSpans * kMarkSpan bytes touches no
// page for marks alone.  For that the marks run backwards (those of the
// first span are last, right before `top` and the blocks), and `lead` puts
// the end of the marks kLead bytes into a page.
// Plain words under __atomic builtins: the arena must be zero from the
// program's first instruction, never dynamically initialised (a library
// initialiser that runs before ours allocates from it).
struct Marks {
    uint64_t starts;  // granule i of the span starts a block
    uint64_t freed;   // ... and that block was freed
};
inline constexpr size_t kSpans = kArenaBytes / kMarkSpan;
inline constexpr size_t kLeadSpans = 64;  // spans whose marks share the blocks' first page
inline constexpr size_t kLead = kLeadSpans * sizeof(Marks);
struct alignas(4096) Arena {
    char lead[4096 - kLead];
    Marks marks[kSpans];  // span s at marks[kSpans - 1 - s]
    size_t top;
    uint64_t key;  // of the header checks (key()); beside `top`, on a page every user touches
    alignas(16) char bytes[kArenaBytes];
};
static_assert(offsetof(Arena, bytes) / 4096 == (offsetof(Arena, marks) + sizeof(Arena::marks) - kLead) / 4096,
              "the first blocks, `top` and the marks of the first spans share a page");
BTM_COLD_BSS constinit Arena arena{};

Marks& marks_of_span(size_t span) { return arena.marks[kSpans - 1 - span]; }

// Where the marks of the granule at p are: word pair and bit, and where
// the area holding p ends.  p is a granule start inside the arena or a
// spill region.
struct Mark {
    Marks* words;
    uint64_t bit;
    const char* end;
};
Mark mark_of(const void* p) {
    size_t off = size_t(static_cast<const char*>(p) - arena.bytes);
    return {&marks_of_span(off / kMarkSpan), uint64_t(1) << (off / kGranule % 64), arena.bytes + kArenaBytes};
}

// Spill regions: where a process without a heap puts small blocks once the
// arena is full.  Each is one mapping carved like the arena (same header,
// same marks), but a freed block is kept on a list of its size class and
// handed out again: a heapless python3 took a page mapping per block, ~700
// KB of address space the program needed (issue 22).  The classes step by
// a quarter, as ordinary size classes do, so a reused block wastes at most
// a quarter of the request.
inline constexpr size_t kRegionBytes = 64 << 10;
inline constexpr size_t kMaxRegions = 256;  // 16 MiB: past it, blocks take mappings of their own
inline constexpr size_t kSpillClasses = 36;
struct Region {
    Marks marks[kRegionBytes / kMarkSpan];
    size_t top;  // offset into bytes
    alignas(16) char bytes[kRegionBytes - kRegionBytes / kMarkSpan * sizeof(Marks) - 16];
};
static_assert(sizeof(Region) == kRegionBytes);
struct Spill {
    SpinLock lock;
    size_t count;  // regions mapped; read without the lock by owner tests
    Region* regions[kMaxRegions];
    void* free[kSpillClasses];  // freed blocks of each class, linked through their first word
};
BTM_COLD_BSS constinit Spill spill{};

Region* region_of(const void* p) {
    size_t n = __atomic_load_n(&spill.count, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n; ++i) {
        Region* r = spill.regions[i];
        if (reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(r->bytes) < sizeof(r->bytes)) return r;
    }
    return nullptr;
}

Mark region_mark(Region* r, const void* p) {
    size_t off = size_t(static_cast<const char*>(p) - r->bytes);
    return {&r->marks[off / kMarkSpan], uint64_t(1) << (off / kGranule % 64), r->bytes + sizeof(r->bytes)};
}

// Marks of a granule start in the arena or a region; null words if p is in
// neither.
Mark locate(const void* p) {
    if (owns(p)) return mark_of(p);
    Region* r = region_of(p);
    return r ? region_mark(r, p) : Mark{nullptr, 0, nullptr};
}

// A spill block's class and size: 16-byte steps up to 128 bytes, then four
// steps per doubling up to kSpillMax.
inline constexpr size_t kSpillMax = 16 << 10;
constexpr size_t spill_class(size_t n) {
    size_t g = n <= kGranule ? 1 : (n + kGranule - 1) / kGranule;
    if (g <= 8) return g - 1;
    unsigned k = 63 - unsigned(__builtin_clzll(g - 1));
    size_t step = size_t(1) << (k - 2);
    return 8 + (k - 3) * 4 + ((g + step - 1) / step - 5);
}
constexpr size_t spill_class_bytes(size_t c) {
    if (c < 8) return (c + 1) * kGranule;
    size_t k = 3 + (c - 8) / 4, q = 5 + (c - 8) % 4;
    return q * (size_t(1) << (k - 2)) * kGranule;
}
static_assert(spill_class_bytes(kSpillClasses - 1) == kSpillMax);

// The header's check: the size word's high half.  The key is made once per
// process from the arena's (randomised) address and the time stamp counter,
// without a system call: a start-up block may be the process's first
// malloc.  It finds overflows, which write what the program had in hand;
// it is not a secret from code that can read the arena.
uint64_t key() {
    uint64_t k = __atomic_load_n(&arena.key, __ATOMIC_RELAXED);
    if (BTM_LIKELY(k)) return k;
    k = reinterpret_cast<uintptr_t>(&arena) * 0x9E3779B97F4A7C15ULL;
#if defined(__x86_64__)
    k ^= __builtin_ia32_rdtsc();
#endif
    k |= 1;
    uint64_t none = 0;
    if (!__atomic_compare_exchange_n(&arena.key, &none, k, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) k = none;
    return k;
}

uint64_t size_word(const void* p, size_t size, uintptr_t site) {
    uint64_t h = (uint64_t(size) | uint64_t(reinterpret_cast<uintptr_t>(p)) << 32) ^ site * 0xC2B2AE3D27D4EB4FULL;
    h ^= key();
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 31;
    return uint64_t(size) | (h & 0xFFFFFFFF00000000ULL);
}

// The marks of p if it starts a block of the arena or a region.
Mark start_mark(const void* p) {
    if (reinterpret_cast<uintptr_t>(p) % kGranule != 0) return {nullptr, 0, nullptr};
    Mark m = locate(p);
    if (m.words && !(__atomic_load_n(&m.words->starts, __ATOMIC_RELAXED) & m.bit)) m.words = nullptr;
    return m;
}

}  // namespace

void* alloc(size_t n, size_t align, uintptr_t site, size_t limit) {
    if (align < kGranule) align = kGranule;
    if (limit > kArenaBytes) limit = kArenaBytes;
    if (n > limit || align > 4096) return nullptr;
    // At least one granule: a block of 0 bytes needs a nonzero size, or
    // usable() could not tell it from a pointer that starts no block (and
    // realloc would refuse it).
    size_t bytes = n == 0 ? kGranule : (n + kGranule - 1) & ~(kGranule - 1);
    // No plain load first: on a page not yet touched that would map the
    // zero page and the compare-and-swap would fault again to copy it.
    size_t cur = 0;
    const uintptr_t base = reinterpret_cast<uintptr_t>(arena.bytes);
    for (;;) {
        // Aligned as an address: `bytes` itself is only 16-byte aligned.
        size_t start = ((base + cur + 16 + align - 1) & ~(align - 1)) - base;
        size_t end = start + bytes;
        if (end > limit) return nullptr;
        if (__atomic_compare_exchange_n(&arena.top, &cur, end, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            char* p = arena.bytes + start;
            reinterpret_cast<uint64_t*>(p)[-2] = size_word(p, end - start, site);
            reinterpret_cast<uintptr_t*>(p)[-1] = site;
            Mark m = mark_of(p);
            __atomic_fetch_or(&m.words->starts, m.bit, __ATOMIC_RELAXED);
            return p;
        }
    }
}

size_t used() { return __atomic_load_n(&arena.top, __ATOMIC_RELAXED); }

[[gnu::cold]] size_t blocks() {
    size_t n = 0, spans = (used() + kMarkSpan - 1) / kMarkSpan;
    auto count = [&n](const Marks& m) {  // no __builtin_popcount: without -mpopcnt it is a libgcc call
        for (uint64_t w = __atomic_load_n(&m.starts, __ATOMIC_RELAXED); w != 0; w &= w - 1) ++n;
    };
    for (size_t i = 0; i < spans; ++i) count(marks_of_span(i));
    size_t regions = __atomic_load_n(&spill.count, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < regions; ++i)
        for (const Marks& m : spill.regions[i]->marks) count(m);
    return n;
}

namespace {

// The class is found from the size the header says, checked by the caller.
[[gnu::cold]] void spill_push(void* p, size_t bytes) {
    size_t c = spill_class(bytes);
    LockGuard guard(spill.lock);
    *static_cast<uintptr_t*>(p) = reinterpret_cast<uintptr_t>(spill.free[c]) ^ key();
    spill.free[c] = p;
}

// A block whose header fails its check counts what it claims, bounded by
// the area's top, as a reader outside the process counts it.
template <class MarksOf>
uint64_t tally_area(const char* bytes, size_t top, MarksOf marks_of, SiteTally* t) {
    uint64_t total = 0;
    for (size_t s = 0; s * kMarkSpan < top; ++s) {
        Marks& m = marks_of(s);
        uint64_t live = __atomic_load_n(&m.starts, __ATOMIC_RELAXED) & ~__atomic_load_n(&m.freed, __ATOMIC_RELAXED);
        for (; live; live &= live - 1) {
            size_t off = s * kMarkSpan + size_t(__builtin_ctzll(live)) * kGranule;
            if (off < 16 || off >= top) continue;  // a block being made
            const char* p = bytes + off;
            uint64_t n = reinterpret_cast<const uint64_t*>(p)[-2] & 0xFFFFFFFF;
            if (n > top - off) n = top - off;
            total += n;
            if (t) t->add(reinterpret_cast<const uintptr_t*>(p)[-1], n);
        }
    }
    return total;
}

}  // namespace

[[gnu::cold]] uint64_t tally(SiteTally* t) {
    uint64_t total = tally_area(arena.bytes, used(), marks_of_span, t);
    size_t n = __atomic_load_n(&spill.count, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n; ++i) {
        Region* r = spill.regions[i];
        auto marks_of = [r](size_t s) -> Marks& { return r->marks[s]; };
        total += tally_area(r->bytes, __atomic_load_n(&r->top, __ATOMIC_RELAXED), marks_of, t);
    }
    return total;
}

bool owns(const void* p) {
    return reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(arena.bytes) < kArenaBytes;
}

// The header may have been overwritten by an overflow of the block before
// it: the size is bounded by the arena, so realloc never copies past it.
namespace {

Header header_at(const void* p, const Mark& m) {
    if (!m.words) return Header{Header::kNotStart, 0, 0};
    uint64_t word = static_cast<const uint64_t*>(p)[-2];
    size_t n = size_t(word & 0xFFFFFFFF);
    size_t room = size_t(m.end - static_cast<const char*>(p));
    bool ok = word == size_word(p, n, static_cast<const uintptr_t*>(p)[-1]) && n <= room;
    return Header{ok ? Header::kOk : Header::kCorrupt, n < room ? n : room, word};
}

}  // namespace

BTM_NOINLINE Header header(const void* p) { return header_at(p, start_mark(p)); }

Release release(void* p, bool reuse) {
    Mark m = start_mark(p);
    if (!m.words) return Release::kInvalid;
    Header h = header_at(p, m);
    if (h.state == Header::kCorrupt) return Release::kCorrupt;
    if (__atomic_fetch_or(&m.words->freed, m.bit, __ATOMIC_RELAXED) & m.bit) return Release::kDouble;
    if (reuse && !owns(p)) spill_push(p, h.size);
    return Release::kOk;
}

[[gnu::cold]] void* spill_alloc(size_t n, uintptr_t site, bool* fresh) {
    if (n > kSpillMax) return nullptr;
    size_t c = spill_class(n), bytes = spill_class_bytes(c);
    LockGuard guard(spill.lock);
    if (void* p = spill.free[c]) {
        // A list a write after free has corrupted is dropped, never followed.
        Mark m = start_mark(p);
        Header h = header_at(p, m);
        if (m.words && !owns(p) && h.state == Header::kOk && h.size == bytes &&
            (__atomic_load_n(&m.words->freed, __ATOMIC_RELAXED) & m.bit)) {
            spill.free[c] = reinterpret_cast<void*>(*static_cast<uintptr_t*>(p) ^ key());
            static_cast<uint64_t*>(p)[-2] = size_word(p, bytes, site);
            static_cast<uintptr_t*>(p)[-1] = site;
            __atomic_fetch_and(&m.words->freed, ~m.bit, __ATOMIC_RELAXED);
            *fresh = false;
            return p;
        }
        spill.free[c] = nullptr;
    }
    size_t count = spill.count;
    Region* r = count ? spill.regions[count - 1] : nullptr;
    if (!r || r->top + 16 + bytes > sizeof(r->bytes)) {
        if (count == kMaxRegions || !(r = static_cast<Region*>(os::map(kRegionBytes)))) return nullptr;
        spill.regions[count] = r;
        __atomic_store_n(&spill.count, count + 1, __ATOMIC_RELEASE);
    }
    char* p = r->bytes + r->top + 16;
    static_cast<uint64_t*>(static_cast<void*>(p))[-2] = size_word(p, bytes, site);
    reinterpret_cast<uintptr_t*>(p)[-1] = site;
    Mark m = region_mark(r, p);
    __atomic_fetch_or(&m.words->starts, m.bit, __ATOMIC_RELAXED);
    __atomic_store_n(&r->top, r->top + 16 + bytes, __ATOMIC_RELAXED);
    *fresh = true;
    return p;
}

bool spilled(const void* p) { return region_of(p) != nullptr; }
[[gnu::cold]] size_t spill_bytes() { return __atomic_load_n(&spill.count, __ATOMIC_RELAXED) * kRegionBytes; }
[[gnu::cold]] void lock_spill() { spill.lock.lock(); }
[[gnu::cold]] void unlock_spill(bool child) {
    if (child) spill.lock.reset();
    else spill.lock.unlock();
}

uintptr_t site(const void* p) { return start_mark(p).words ? static_cast<const uintptr_t*>(p)[-1] : 0; }

Layout layout() {
    return {reinterpret_cast<uintptr_t>(arena.bytes), reinterpret_cast<uintptr_t>(&arena.top),
            reinterpret_cast<uintptr_t>(arena.marks), uint32_t(kSpans), uint32_t(kMarkSpan), uint32_t(kGranule),
            uint32_t(sizeof(Marks))};
}

}  // namespace btm::boot
