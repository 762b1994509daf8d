// A small heap's pages serve every class (issue 22 part 2).  While the heap
// is below partition_after, a block of a one-slot class (above 16 KiB) that a
// program frees goes home at once, its slab is parked with its pair, and the
// next slab another pair makes takes its pages: python3 grows its dicts
// by malloc and free (6.5 -> 13 -> 26 -> 52 KB) and `ls` frees a 41.6 KB
// copy when realloc moves its table to a large block, and those freed slots
// sat in the thread cache, resident, for the process's life (glibc's brk
// heap reuses such a block for the next small ones).  A pair that keeps
// asking (more than its first refills) is cached as before.
//
// Run with the default knobs (ctest clears the environment's BTM_ knobs),
// in a process of its own: the heap must still be small.
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "btmalloc.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace {

using btm_test::escape;
using btm_test::opaque;

struct btm_stats stats() {
    struct btm_stats s{};
    s.version = BTM_STATS_VERSION;
    btm_stats(&s);
    return s;
}

// Ends the start-up phase (its arena would serve the blocks below without a
// heap) and checks that the heap is still a small one.
void make_small_heap(std::vector<void*>& keep) {
    keep.reserve(4096);  // its growth would take pages in the measured part
    for (int i = 0; i < 64 && stats().chunks == 0; ++i) {
        keep.push_back(malloc(opaque(size_t(4096))));
        memset(keep.back(), 1, 4096);
    }
    struct btm_stats s = stats();
    ASSERT_GE(s.chunks, 1u) << "the start-up phase never ended";
    ASSERT_LE(s.chunks * (2u << 20), 4u << 20) << "the heap is past partition_after already";
}

TEST(SmallHeap, FreedBigSlotServesOtherClasses) {
    if (btm_test::kAgainstGlibc) GTEST_SKIP() << "btmalloc's page heap";
    std::vector<void*> keep;
    make_small_heap(keep);
    // Small blocks first, so the code and tables they touch are resident
    // before the measured part.
    for (int i = 0; i < 256; ++i) {
        keep.push_back(malloc(opaque(size_t(24))));
        memset(keep.back(), 2, 24);
    }
    constexpr size_t kBig = 48 * 1024;  // a one-slot class (49,152 B)
    auto* big = static_cast<char*>(malloc(opaque(kBig)));
    ASSERT_NE(big, nullptr);
    memset(big, 3, kBig);  // resident, as `ls`'s copied table is
    escape(big);
    free(big);
    uint64_t rss_before = stats().resident_bytes;
    // 48 KiB of 24-byte blocks: twelve pages' worth.
    size_t inside = 0, n = 0;
    for (size_t bytes = 0; bytes < kBig; bytes += 32, ++n) {
        auto* p = static_cast<char*>(malloc(opaque(size_t(24))));
        ASSERT_NE(p, nullptr);
        memset(p, 4, 24);
        keep.push_back(p);
        inside += p >= big && p < big + kBig;
    }
    uint64_t grown = stats().resident_bytes - rss_before;
    EXPECT_GE(inside, n / 2) << "the freed 48 KiB slot's pages did not serve the small blocks";
    EXPECT_LE(grown, 24u * 1024) << "RSS grew by " << grown << " bytes for 48 KiB of small blocks";
    EXPECT_LE(stats().chunks, 2u);
    for (void* p : keep) free(p);
}

// The same class again and again: after its first refills the pair caches
// its slot like any other, so the slabs made stay bounded.
TEST(SmallHeap, ChurnOfABigClassIsCached) {
    if (btm_test::kAgainstGlibc) GTEST_SKIP() << "btmalloc's slab counts";
    std::vector<void*> keep;
    make_small_heap(keep);
    uint64_t made = stats().slabs_made;
    for (int i = 0; i < 2000; ++i) {
        auto* p = static_cast<char*>(malloc(opaque(size_t(56 * 1024))));  // 57,344 B: one slot
        ASSERT_NE(p, nullptr);
        p[i % (56 * 1024)] = 1;
        escape(p);
        free(p);
    }
    EXPECT_LE(stats().slabs_made - made, 80u) << "a churning one-slot class kept giving its slab back";
    for (void* p : keep) free(p);
}

}  // namespace
