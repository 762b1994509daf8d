// Call-site partitions: the return address of the allocation call picks one
// of P partitions.
//
// Mode hash: partition = high bits of (return address * odd constant), masked
// to P - 1.  Mode intern: a lock-free table gives each distinct call site its
// own partition (1 .. P-1) in order of first use; once they are taken, later
// call sites share partition 0.  Both return the partition already shifted into bin
// index position (partition << kClassBits).
#pragma once

#include <atomic>

#include "core/state.h"

namespace btm::partition {

inline constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
inline constexpr size_t kInternSlots = 4096;  // a power of two, > kMaxPartitions

struct InternSlot {
    std::atomic<uintptr_t> ra;
    uint32_t bits;
};
extern InternSlot* g_intern;

uint32_t intern_slow(uintptr_t ra);

BTM_INLINE uint32_t hash_bits(uintptr_t ra) {
    if constexpr (!kPartitioning) return 0;
    return uint32_t((ra * kMul) >> 32) & uint32_t(g.part_mask);
}

BTM_INLINE uint32_t intern_bits(uintptr_t ra) {
    size_t i = (ra * kMul) >> 52;  // top 12 bits: kInternSlots
    InternSlot& s = g_intern[i];
    if (BTM_LIKELY(s.ra.load(std::memory_order_acquire) == ra)) return s.bits;
    return intern_slow(ra);
}

BTM_INLINE uint32_t bits_of(uintptr_t ra) {
    if constexpr (!kPartitioning) return 0;
    return BTM_UNLIKELY(g.intern) ? intern_bits(ra) : hash_bits(ra);
}

// First call site seen for each partition, for reports (0 = none yet), and
// whether a slow path has seen a second one there (then reports can only
// name the likely site of a block).
extern std::atomic<uintptr_t>* g_site;
extern std::atomic<uint8_t>* g_shared;
BTM_INLINE void note_site(uint32_t bin, uintptr_t ra) {
    uint32_t part = bin >> kClassBits;
    std::atomic<uintptr_t>& s = g_site[part];
    uintptr_t first = s.load(std::memory_order_relaxed);
    if (BTM_UNLIKELY(first == 0)) {
        s.compare_exchange_strong(first, ra, std::memory_order_relaxed);
    } else if (first != ra && !g_shared[part].load(std::memory_order_relaxed)) {
        g_shared[part].store(1, std::memory_order_relaxed);
    }
}

// Bytes of the tables init() places in `mem` (zeroed, 64-byte aligned, part
// of the start-up metadata mapping).
size_t table_bytes(uint32_t npart);
bool init(uint32_t npart, bool intern, void* mem);
void fork_child();
bool lock_held();  // see SpinLock::is_locked

}  // namespace btm::partition
