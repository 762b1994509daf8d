#include "core/boot.h"

#include <atomic>

#include "core/base.h"

namespace btm::boot {
namespace {

inline constexpr size_t kArenaBytes = 1 << 20;
BTM_COLD_BSS alignas(4096) char arena[kArenaBytes];
std::atomic<size_t> top{0};

}  // namespace

void* alloc(size_t n, size_t align) {
    if (align < 16) align = 16;
    if (n > kArenaBytes || align > 4096) return nullptr;
    size_t cur = top.load(std::memory_order_relaxed);
    for (;;) {
        size_t start = (cur + 16 + align - 1) & ~(align - 1);
        size_t end = start + ((n + 15) & ~size_t(15));
        if (end > kArenaBytes) return nullptr;
        if (top.compare_exchange_weak(cur, end, std::memory_order_relaxed)) {
            reinterpret_cast<size_t*>(arena + start)[-2] = end - start;
            return arena + start;
        }
    }
}

size_t used() { return top.load(std::memory_order_relaxed); }

bool owns(const void* p) {
    return reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(arena) < kArenaBytes;
}

size_t usable(const void* p) { return static_cast<const size_t*>(p)[-2]; }

}  // namespace btm::boot
