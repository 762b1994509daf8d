#include "core/boot.h"

#include "core/base.h"

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

// Where the marks of the granule at p are: word pair and bit.  p is a
// granule start inside the arena.
struct Mark {
    Marks* words;
    uint64_t bit;
};
Mark mark_of(const void* p) {
    size_t off = size_t(static_cast<const char*>(p) - arena.bytes);
    return {&marks_of_span(off / kMarkSpan), uint64_t(1) << (off / kGranule % 64)};
}

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

bool is_start(const void* p) {
    if (reinterpret_cast<uintptr_t>(p) % kGranule != 0) return false;
    Mark m = mark_of(p);
    return (__atomic_load_n(&m.words->starts, __ATOMIC_RELAXED) & m.bit) != 0;
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

size_t blocks() {
    size_t n = 0, spans = (used() + kMarkSpan - 1) / kMarkSpan;
    for (size_t i = 0; i < spans; ++i)  // no __builtin_popcount: without -mpopcnt it is a libgcc call
        for (uint64_t w = __atomic_load_n(&marks_of_span(i).starts, __ATOMIC_RELAXED); w != 0; w &= w - 1) ++n;
    return n;
}

// A block whose header fails its check counts what it claims, bounded by
// the arena's top, as a reader outside the process counts it.
[[gnu::cold]] uint64_t tally(SiteTally* t) {
    uint64_t total = 0;
    size_t top = used();
    for (size_t s = 0; s * kMarkSpan < top; ++s) {
        Marks& m = marks_of_span(s);
        uint64_t live = __atomic_load_n(&m.starts, __ATOMIC_RELAXED) & ~__atomic_load_n(&m.freed, __ATOMIC_RELAXED);
        for (; live; live &= live - 1) {
            size_t off = s * kMarkSpan + size_t(__builtin_ctzll(live)) * kGranule;
            if (off < 16 || off >= top) continue;  // a block being made
            const char* p = arena.bytes + off;
            uint64_t bytes = reinterpret_cast<const uint64_t*>(p)[-2] & 0xFFFFFFFF;
            if (bytes > top - off) bytes = top - off;
            total += bytes;
            if (t) t->add(reinterpret_cast<const uintptr_t*>(p)[-1], bytes);
        }
    }
    return total;
}

bool owns(const void* p) {
    return reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(arena.bytes) < kArenaBytes;
}

// The header may have been overwritten by an overflow of the block before
// it: the size is bounded by the arena, so realloc never copies past it.
BTM_NOINLINE Header header(const void* p) {
    if (!is_start(p)) return Header{Header::kNotStart, 0, 0};
    uint64_t word = static_cast<const uint64_t*>(p)[-2];
    size_t n = size_t(word & 0xFFFFFFFF);
    size_t room = size_t(arena.bytes + kArenaBytes - static_cast<const char*>(p));
    bool ok = word == size_word(p, n, static_cast<const uintptr_t*>(p)[-1]) && n <= room;
    return Header{ok ? Header::kOk : Header::kCorrupt, n < room ? n : room, word};
}

Release release(void* p) {
    Header h = header(p);
    if (h.state == Header::kNotStart) return Release::kInvalid;
    if (h.state == Header::kCorrupt) return Release::kCorrupt;
    Mark m = mark_of(p);
    return __atomic_fetch_or(&m.words->freed, m.bit, __ATOMIC_RELAXED) & m.bit ? Release::kDouble : Release::kOk;
}

uintptr_t site(const void* p) { return is_start(p) ? static_cast<const uintptr_t*>(p)[-1] : 0; }

Layout layout() {
    return {reinterpret_cast<uintptr_t>(arena.bytes), reinterpret_cast<uintptr_t>(&arena.top),
            reinterpret_cast<uintptr_t>(arena.marks), uint32_t(kSpans), uint32_t(kMarkSpan), uint32_t(kGranule),
            uint32_t(sizeof(Marks))};
}

}  // namespace btm::boot
