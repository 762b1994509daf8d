#include "core/partition.h"

#include "core/lock.h"
#include "os/os.h"

static_assert(btm::partition::kInternSlots == (size_t(1) << 12));

namespace btm::partition {

InternSlot* g_intern;
std::atomic<uintptr_t>* g_site;
std::atomic<uint8_t>* g_shared;

namespace {
SpinLock intern_lock;
// Partition 0 is the one every call site shares once the others are taken
// (or the table is half full): a late site then never reaches the memory of
// a site that has a partition of its own.
inline constexpr uint32_t kSharedPartition = 0;
uint32_t next_id = kSharedPartition + 1;
uint32_t used_slots;
}  // namespace

size_t table_bytes(uint32_t npart) { return (npart * (sizeof(uintptr_t) + 1) + 63) & ~size_t(63); }

bool init(uint32_t npart, bool intern, void* mem) {
    g_site = static_cast<std::atomic<uintptr_t>*>(mem);
    g_shared = reinterpret_cast<std::atomic<uint8_t>*>(static_cast<char*>(mem) + npart * sizeof(uintptr_t));
    if (intern) {
        g_intern = static_cast<InternSlot*>(os::map(kInternSlots * sizeof(InternSlot)));
        if (!g_intern) return false;
    }
    return true;
}

// Finds a call site that collided with another on its home slot (lock-free
// probing), or inserts a new one under a lock: that happens once per call
// site.  Readers see `bits` before `ra` (release/acquire).
BTM_LATE uint32_t intern_slow(uintptr_t ra) {
    size_t j = (ra * kMul) >> 52;
    for (size_t probe = 0; probe < kInternSlots; ++probe, j = (j + 1) & (kInternSlots - 1)) {
        uintptr_t cur = g_intern[j].ra.load(std::memory_order_acquire);
        if (cur == ra) return g_intern[j].bits;
        if (cur == 0) break;
    }
    LockGuard guard(intern_lock);
    size_t i = (ra * kMul) >> 52;
    for (size_t probe = 0; probe < kInternSlots; ++probe, i = (i + 1) & (kInternSlots - 1)) {
        InternSlot& s = g_intern[i];
        uintptr_t cur = s.ra.load(std::memory_order_relaxed);
        if (cur == ra) return s.bits;
        if (cur != 0) continue;
        if (next_id >= g.npart || used_slots >= kInternSlots / 2) return kSharedPartition << kClassBits;
        s.bits = next_id++ << kClassBits;
        ++used_slots;
        s.ra.store(ra, std::memory_order_release);
        return s.bits;
    }
    return kSharedPartition << kClassBits;
}

void fork_child() { intern_lock.reset(); }
bool lock_held() { return intern_lock.is_locked(); }

}  // namespace btm::partition
