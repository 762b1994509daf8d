// ownermap: the cost of free()'s first question -- is this pointer ours, and
// which chunk holds it? -- for the two fault-free designs DESIGN-NOTES weighs:
//   range:  one reserved region; "ours" is (p - base) < size, the chunk header
//           is p & ~(2 MiB - 1)  (what btmalloc does);
//   radix:  a two-level table over 2 MiB regions, as the original C btmalloc
//           used: top level indexed by bits 47..35, leaf by bits 34..21, the
//           leaf entry names the chunk (null for a foreign pointer).
// Both answer the same question for the same pointers: a mix of pointers into
// the chunks of a 64 GiB reservation (all 32,768 registered, probes spread over
// them, as in a large heap: the radix leaves do not stay in L1) and foreign
// ones (stack, text).
// Prints ns per lookup and a checksum so neither loop is optimised away.
// Runs without any allocator of ours: it measures the lookup designs alone.
#include <sys/mman.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr uintptr_t kChunk = uintptr_t(1) << 21;
constexpr unsigned kTopBits = 13, kLeafBits = 14;  // 47 - 21 = 26 bits of region index

struct Radix {
    void** top[1u << kTopBits] = {};
    void set(uintptr_t region_addr, void* chunk) {
        uintptr_t r = region_addr >> 21;
        void**& leaf = top[r >> kLeafBits];
        if (!leaf) leaf = static_cast<void**>(calloc(size_t(1) << kLeafBits, sizeof(void*)));
        leaf[r & ((1u << kLeafBits) - 1)] = chunk;
    }
    __attribute__((noinline)) void* lookup(uintptr_t p) const {
        uintptr_t r = p >> 21;
        if (r >> (kTopBits + kLeafBits)) return nullptr;
        void** leaf = top[r >> kLeafBits];
        return leaf ? leaf[r & ((1u << kLeafBits) - 1)] : nullptr;
    }
};

struct Range {
    uintptr_t base, size;
    __attribute__((noinline)) void* lookup(uintptr_t p) const {
        return p - base < size ? reinterpret_cast<void*>(p & ~(kChunk - 1)) : nullptr;
    }
};

double now_ns() {
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
    const long iters = argc > 1 ? atol(argv[1]) : 50'000'000;
    const uintptr_t reserve = uintptr_t(64) << 30;
    void* region = mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) return 1;
    uintptr_t base = (reinterpret_cast<uintptr_t>(region) + kChunk - 1) & ~(kChunk - 1);
    Range range{base, reserve - kChunk};
    static Radix radix;
    for (unsigned c = 0; c < 32767; ++c) radix.set(base + c * kChunk, reinterpret_cast<void*>(base + c * kChunk));

    // 1 Mi probe pointers: 7 of 8 into the chunks, the rest foreign.
    int on_stack = 0;
    std::vector<uintptr_t> probes;
    uint64_t x = 88172645463325252ULL;
    for (unsigned i = 0; i < (1u << 20); ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (i % 8 != 7) probes.push_back(base + (x % 32767) * kChunk + (x >> 32) % kChunk);
        else probes.push_back((i / 8) % 2 ? reinterpret_cast<uintptr_t>(&on_stack) : reinterpret_cast<uintptr_t>(&main));
    }

    for (int round = 0; round < 2; ++round) {  // the first round warms up
        uintptr_t sum_range = 0, sum_radix = 0;
        double t0 = now_ns();
        for (long i = 0; i < iters; ++i) sum_range += reinterpret_cast<uintptr_t>(range.lookup(probes[i & ((1 << 20) - 1)]));
        double t1 = now_ns();
        for (long i = 0; i < iters; ++i) sum_radix += reinterpret_cast<uintptr_t>(radix.lookup(probes[i & ((1 << 20) - 1)]));
        double t2 = now_ns();
        if (round == 1) {
            printf("ownermap_range %.3f ns\n", (t1 - t0) / double(iters));
            printf("ownermap_radix %.3f ns\n", (t2 - t1) / double(iters));
            printf("# checksums %s\n", sum_range == sum_radix ? "equal" : "DIFFER");
        }
    }
    return 0;
}
