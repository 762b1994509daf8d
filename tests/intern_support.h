// Call sites for the intern-mode tests (issue 19): site<N> is a call site of
// its own for every N, and overlapping() says whether blocks of one site
// reused memory blocks of another had occupied.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <vector>

#include <malloc.h>

#include "test_support.h"

namespace intern_test {

// A distinct call site per N: each instantiation is its own function with
// its own call of malloc (no_icf: identical bodies must not be merged).
template <int N>
[[gnu::noinline, gnu::no_icf]] void* site(size_t n) {
    asm volatile("" : : "i"(N));
    void* p = malloc(n);
    btm_test::escape(p);
    return p;
}

struct Block {
    uintptr_t addr;
    size_t size;
};

template <int N>
std::vector<Block> allocate(size_t count, size_t size) {
    std::vector<Block> out;
    out.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        void* p = site<N>(size);
        if (!p) abort();
        memset(p, 0xA5, size);
        out.push_back({reinterpret_cast<uintptr_t>(p), malloc_usable_size(p)});
    }
    return out;
}

inline void release(const std::vector<Block>& blocks) {
    for (const Block& b : blocks) free(reinterpret_cast<void*>(b.addr));
}

// How many of `later` overlap memory any of `earlier` occupied.
inline size_t overlapping(std::vector<Block> earlier, const std::vector<Block>& later) {
    std::sort(earlier.begin(), earlier.end(), [](const Block& a, const Block& b) { return a.addr < b.addr; });
    size_t n = 0;
    for (const Block& b : later) {
        auto it = std::upper_bound(earlier.begin(), earlier.end(), b.addr,
                                   [](uintptr_t a, const Block& e) { return a < e.addr; });
        bool hit = it != earlier.end() && it->addr < b.addr + b.size;
        if (it != earlier.begin() && std::prev(it)->addr + std::prev(it)->size > b.addr) hit = true;
        n += hit;
    }
    return n;
}

}  // namespace intern_test
