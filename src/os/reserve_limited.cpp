// Reserving under an address-space limit (RLIMIT_AS), where every reserved
// byte counts against the program: no slack is kept, and none is needed
// for longer than the call.  Rare, so linked with the cold code
// (CMakeLists.txt), out of the first 64 KiB window every process maps.
#include <sys/mman.h>

#include "os/os.h"
#include "os/syscall.h"

namespace btm::os {
namespace {

constexpr int kReserveFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

// The slack of an oversized mapping may be more than the limit leaves: an
// exact mapping at the aligned address just below where the kernel puts
// one (top-down layouts leave that free), or 0.
uintptr_t reserve_exact(size_t size, size_t align, size_t below) {
    void* q = sys::mmap(nullptr, below + size, PROT_NONE, kReserveFlags);
    if (q == MAP_FAILED) return 0;
    sys::munmap(q, below + size);
    uintptr_t r = (reinterpret_cast<uintptr_t>(q) + below) & ~(uintptr_t(align) - 1);
    if (r < below + align) return 0;
    void* hint = reinterpret_cast<void*>(r - below);
    void* f = sys::mmap(hint, below + size, PROT_NONE, kReserveFlags | MAP_FIXED_NOREPLACE);
    if (f == hint) return r;
    if (f != MAP_FAILED) sys::munmap(f, below + size);  // a kernel before 4.17 took it as a hint
    return 0;
}

// An oversized mapping with both ends of its slack unmapped, or 0.
uintptr_t reserve_trimmed(size_t size, size_t align, size_t below) {
    size_t over = below + size + align;
    void* p = sys::mmap(nullptr, over, PROT_NONE, kReserveFlags);
    if (p == MAP_FAILED) return 0;
    uintptr_t start = reinterpret_cast<uintptr_t>(p);
    uintptr_t r = (start + below + align - 1) & ~(uintptr_t(align) - 1);
    uintptr_t head = r - below - start, tail = over - head - below - size;
    if (head) sys::munmap(p, head);
    if (tail) sys::munmap(reinterpret_cast<void*>(r + size), tail);
    return r;
}

}  // namespace

// A heap costs its whole first reservation (a 2 MiB chunk and the tables)
// in address space at once, where the heapless path (alloc.cpp: the start-up
// arena, then packed spill regions) costs about what the program asks.  A
// reservation that just fitted left the program nothing: python3 failed at
// a band of limits (15,717-15,728 KB here) between limits where it ran
// heapless and limits where the heap left it room (issue 22).  So the heap
// may take at most a quarter of the room left when it is made; where that
// leaves too little, the program's heap cannot grow big anyway.
bool heap_leaves_room(uint64_t bytes, uint64_t soft) {
    uint64_t mapped = statm_bytes(0);
    return mapped < soft && bytes <= (soft - mapped) / 4;
}

void* reserve_limited(size_t size, size_t align, size_t below) {
    uintptr_t r = reserve_exact(size, align, below);
    if (!r) r = reserve_trimmed(size, align, below);
    if (!r) return nullptr;
    sys::madvise(reinterpret_cast<void*>(r - below), below + size, MADV_NOHUGEPAGE);
    return reinterpret_cast<void*>(r);
}

}  // namespace btm::os
