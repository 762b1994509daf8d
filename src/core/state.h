// Process-wide state read on the fast paths, and the thread's own state.
//
// Invariant: before init() has published them, `g.base` and `g.size` are 0,
// so no pointer is "ours" and every free takes the slow path; `g.part_mask`
// is 0, so every call site maps to partition 0; and `g.divert` holds
// kDivertNoHeap (and every thread's cache is the empty placeholder), so
// every malloc takes the slow path, which runs init() first.  Nothing on a
// fast path ever asks "am I initialised?".
#pragma once

#include <bit>

#include "core/base.h"
#include "core/size_classes.h"

namespace btm {

// Reasons for malloc to take its out-of-line path (one test on the hit path
// covers them all): intern mode, a synchronous-mode process holding free
// pages that only an aging tick will release, and a process that has no
// heap yet (set from the first instruction, cleared when init_heap() has
// run): its mallocs go straight to the slow path without reading a thread
// cache, so a short-lived process never faults in the placeholder's page.
inline constexpr uint8_t kDivertIntern = 1;
inline constexpr uint8_t kDivertTick = 2;
inline constexpr uint8_t kDivertNoHeap = 4;

struct alignas(64) Globals {
    uintptr_t base = 0;               // primary reservation: [base, base + size)
    uintptr_t size = 0;
    uint64_t secret = 0;              // safe-linking key
    uint64_t free_key = 0;            // marks a slot as free (word 1 of a free slot)
    uint64_t part_mask = 0;           // (P - 1) << kClassBits
    uint32_t page_shift = 0;
    uint32_t npart = 0;
    uintptr_t page_mask = 0;          // page size - 1
    bool intern = false;              // partition_mode = intern
    uint8_t divert = kDivertNoHeap;   // kDivert* bits: malloc leaves its inline path
    bool checks = false;              // runtime hardening checks (knob `hardening`)
    bool mesh = false;                // chunks are memfd-backed (knob mesh: features/mesh.h)
    bool initialized = false;
};
extern Globals g;

// The page size as free's hit path uses it.  Linux on x86-64 has one base
// page size, 4 KiB (AT_PAGESZ, which init reads, says the same), so there
// it is a constant: one load fewer on every free.
#if defined(__x86_64__)
inline constexpr uint32_t kFixedPageShift = 12;
BTM_INLINE constexpr uint32_t hot_page_shift() { return kFixedPageShift; }
BTM_INLINE constexpr uintptr_t hot_page_mask() { return (uintptr_t(1) << kFixedPageShift) - 1; }
#else
BTM_INLINE uint32_t hot_page_shift() { return g.page_shift; }
BTM_INLINE uintptr_t hot_page_mask() { return g.page_mask; }
#endif

// The class of a size up to kLutMax, as malloc looks it up.  A process
// starts with kCoarseLut: its first mallocs of up to 64 B round up to 32 or
// 64 B, because a short-lived process touches a data page per class it uses;
// larger sizes keep their ordinary class (size_classes.h says why).  The
// phase ends (the table becomes kClassLut) after kCoarseSlowCalls slow
// mallocs or when partitions switch on (knob partition_after; at once if it
// is 0).  A racing reader sees either class of a size: both fit.
extern std::array<uint8_t, kLutMax / 16 + 1> g_class_lut;
inline constexpr uint64_t kCoarseSlowCalls = 2048;
// Also starts the slabs' clock (chunks::start_clock).
void end_coarse_phase();
BTM_INLINE unsigned class_for(size_t n) {
    return BTM_LIKELY(n <= kLutMax) ? g_class_lut[(n + 15) >> 4] : class_of_medium(n);
}

// Per size class, filled at init from the page size: what free's hit path
// needs to tell a slot start from any other offset in a slab, 16 bytes so
// that one shift indexes it.
struct SlotCheck {
    uint64_t inverse;      // of the size's odd part, modulo 2^64
    uint32_t capacity;     // slots per slab
    uint32_t shift;        // trailing zero bits of the size
};
static_assert(sizeof(SlotCheck) == 16);
extern SlotCheck g_check[kNumClasses];

constexpr SlotCheck make_slot_check(uint32_t size, uint32_t capacity) {
    uint32_t shift = uint32_t(__builtin_ctz(size));
    uint64_t odd = size >> shift, inv = odd;  // right to 3 bits: odd * odd == 1 mod 8
    for (int i = 0; i < 5; ++i) inv *= 2 - odd * inv;  // Newton: each step doubles the bits
    return SlotCheck{inv, capacity, shift};
}

// True if byte offset `off` inside a slab is the start of one of its
// `capacity` slots.  Multiplying by the inverse of the size's odd part
// and rotating by its power of two gives off / size exactly when the size
// divides off, and a number no slab's capacity reaches when it does not
// (a remainder in the low bits rotates into the top ones; an odd part
// that does not divide lands above 2^64 / size): one multiply, one rotate
// and one compare check both the division and the bound.
BTM_INLINE constexpr bool slot_start(const SlotCheck& k, uint64_t off) {
    return std::rotr(off * k.inverse, int(k.shift)) < k.capacity;
}
BTM_INLINE bool is_slot_start(uint32_t cls, uint64_t off) { return slot_start(g_check[cls], off); }

struct ClassInfo {
    uint32_t size;
    uint16_t npages;       // pages per slab
    uint16_t capacity;     // slots per slab
    uint16_t batch;        // slots moved per refill / flush
};
extern ClassInfo g_class[kNumClasses];

// A stack of free slots: malloc takes slots[count - 1], free stores at
// slots[count]; no link runs through the slots (only the free mark is in
// them).  `slots` holds max entries at least (2 batches, cut from the cache
// when the bin is first used).
struct Bin {
    void** slots;
    uint32_t count;
    uint32_t max;          // 0 until the bin is first used: forces the slow path
};
static_assert(sizeof(Bin) == 16);

// A fresh run: the never-used tail of a slab whose pages were all clean when
// it was made, handed to one thread cache whole.  Its slots go out one by one
// from malloc's slow path, unwritten: the memory reads as zeros and is not
// resident yet, so the page faults land in the program's first writes instead
// of inside malloc (and calloc needs no clearing).  A one-page slab's run
// (`carve`) gives out one slot so; by the next slow path the program has
// written that slot, so the page is resident and the rest is carved into
// the bin at no fault.
struct FreshRun {
    char* next;
    uint32_t size;
    uint16_t left;
    uint16_t carve;
};
static_assert(sizeof(FreshRun) == 16);

struct ThreadCache {
    Bin bins[kMaxBins];    // real caches allocate only npart << kClassBits bins
};

enum class Phase : uint32_t { kNone = 0, kStarting, kLive, kDead };

struct ThreadState {
    ThreadCache* tc;       // never null: the placeholder until the cache exists
    uint32_t depth;        // > 0 while this thread runs an allocator slow path
    Phase phase;
    uint32_t diverted;     // diverted mallocs, to poll for aging ticks now and then
    void* zeroed;          // the last slot malloc took from a fresh run (calloc needs not clear it)
};
extern __thread ThreadState t_state __attribute__((tls_model("initial-exec")));
// The empty cache every thread starts with (thread_cache.cpp); fixed once
// init has read the configuration.
extern ThreadCache* g_placeholder_tc;

// Safe-linking: a free slot's first word holds the next pointer mixed with a
// per-process secret and the slot's own address, so an overflow that writes a
// plain pointer there produces a wild value that the range check catches.
BTM_INLINE void* link_decode(const void* slot) {
    uint64_t v = *static_cast<const uint64_t*>(slot);
    if constexpr (kHardening) v ^= g.secret ^ reinterpret_cast<uintptr_t>(slot);
    return reinterpret_cast<void*>(v);
}
BTM_INLINE void link_encode(void* slot, const void* next) {
    uint64_t v = reinterpret_cast<uintptr_t>(next);
    if constexpr (kHardening) v ^= g.secret ^ reinterpret_cast<uintptr_t>(slot);
    *static_cast<uint64_t*>(slot) = v;
}

BTM_INLINE bool in_primary(uintptr_t a) { return a - g.base < g.size; }

// The free mark: word 1 of a slot holds the per-process key while the slot
// is free (in a bin, its slab's free or remote list), anything else while
// it is live.  free() of a marked slot is a double free.
BTM_INLINE void mark_free(void* p) { static_cast<uint64_t*>(p)[1] = g.free_key; }
BTM_INLINE bool marked_free(const void* p) { return static_cast<const uint64_t*>(p)[1] == g.free_key; }
BTM_INLINE void clear_mark(void* p) { static_cast<uint64_t*>(p)[1] = 0; }

}  // namespace btm
