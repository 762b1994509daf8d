#include "core/orphan.h"

#include <errno.h>

#include <cstdint>

#include "core/base.h"
#include "core/boot.h"
#include "core/central.h"
#include "core/chunk.h"
#include "core/globals.h"
#include "core/large.h"
#include "core/partition.h"
#include "core/reclaim.h"
#include "core/thread_cache.h"
#include "os/os.h"

namespace btm::orphan {
namespace {

bool g_orphan;  // this process is a clone() child that inherited a held lock

// The blocks alloc() mapped, append-only (a freed one's slot keeps addr 0).
struct Block {
    uintptr_t addr;  // 0: freed
    size_t size;     // the mapping's
};
inline constexpr uint32_t kBlocks = 4096;
BTM_COLD_BSS Block blocks[kBlocks];
uint32_t nblocks;

Block* find(const void* p) {
    uint32_t n = __atomic_load_n(&nblocks, __ATOMIC_RELAXED);
    for (uint32_t i = 0; i < n && i < kBlocks; ++i)
        if (__atomic_load_n(&blocks[i].addr, __ATOMIC_ACQUIRE) == reinterpret_cast<uintptr_t>(p)) return &blocks[i];
    return nullptr;
}

}  // namespace

bool check() {
    if (__atomic_load_n(&g_orphan, __ATOMIC_RELAXED)) return true;
    // A child of fork() or of clone() without CLONE_VM whose token the fork
    // handler did not re-arm: its parent had one thread (the handler wrote
    // nothing), or clone() ran no handler, or a library's fork handler frees
    // before ours has run.  The child has one thread, so a lock that is held
    // now has a holder that is not here (or, in that last case, is held by
    // this thread's fork handler until ours releases it).
    bool held = init_lock_held() || chunks::lock_held() || large::lock_held() || central::lock_held() ||
                partition::lock_held() || tcache::lock_held() || reclaim::lock_held();
    if (!held) {
        __atomic_store_n(g_alive, 1, __ATOMIC_RELAXED);
        return false;
    }
    __atomic_store_n(&g_orphan, true, __ATOMIC_RELAXED);
    if (g_cfg.verbose) {
        static const char kLine[] =
            "btmalloc: this process was made by clone() without fork handlers and inherited a held allocator "
            "lock: it no longer uses the heap\n";
        os::write_all(2, kLine, sizeof kLine - 1);
    }
    return true;
}

void* alloc(size_t n, size_t align) {
    if (void* p = boot::alloc(n, align)) return p;
    size_t page = os::page_size();
    size_t bytes = n > SIZE_MAX - page ? 0 : (n + page - 1) & ~(page - 1);
    uint32_t slot = __atomic_fetch_add(&nblocks, 1, __ATOMIC_RELAXED);
    void* p = align <= page && bytes && slot < kBlocks ? os::map(bytes) : nullptr;
    if (!p) {
        errno = ENOMEM;
        return nullptr;
    }
    blocks[slot].size = bytes;
    __atomic_store_n(&blocks[slot].addr, reinterpret_cast<uintptr_t>(p), __ATOMIC_RELEASE);
    return p;
}

bool release(void* p) {
    Block* b = find(p);
    uintptr_t addr = reinterpret_cast<uintptr_t>(p);
    if (!b || !__atomic_compare_exchange_n(&b->addr, &addr, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return false;
    os::unmap(p, b->size);
    return true;
}

size_t usable(const void* p) {
    Block* b = find(p);
    return b ? b->size : 0;
}

void fork_child() {
    g_orphan = false;
    if (g_alive) *g_alive = 1;
}

}  // namespace btm::orphan
