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

struct btm_stats stats() { return btm_test::read_stats(); }

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

// Hot bins grow past two batches (thread_cache.cpp, grow) only once the heap
// has passed partition_after: a small process keeps its bins at two batches,
// which pins less, and never runs the growth code, which lies past the
// library's first 64 KiB (python3 mapped it at start: library_text_pages).
TEST(SmallHeap, HotBinsStayAtTwoBatches) {
    if (btm_test::kAgainstGlibc) GTEST_SKIP() << "btmalloc's bin limits";
    std::vector<void*> keep;
    make_small_heap(keep);
    std::vector<void*> live;
    live.reserve(256);
    uint64_t widest = 0;
    for (int round = 0; round < 12; ++round) {
        // Mallocs from one refill to the next (the first stretch of a round
        // pops what the frees left in the bin).
        uint64_t since = 0, slow = stats().malloc_calls_slow;
        bool refilled = false;
        for (int i = 0; i < 200; ++i) {
            live.push_back(malloc(opaque(size_t(4096))));
            ASSERT_NE(live.back(), nullptr);
            memset(live.back(), 5, 64);
            ++since;
            uint64_t now = stats().malloc_calls_slow;
            if (now != slow) {
                if (refilled && round > 0 && since > widest) widest = since;
                refilled = true;
                since = 0;
                slow = now;
            }
        }
        for (void* p : live) free(p);
        live.clear();
    }
    // Two batches of 4 KiB are 16 slots and a refill takes half of them, so
    // a slow path comes at least every 9th malloc; a grown bin's at the 17th.
    EXPECT_LE(widest, 9u) << "a 4 KiB bin grew in a small heap: " << widest - 1 << " slots per refill";
    EXPECT_LE(stats().chunks, 2u) << "the heap left the small phase: the test measured nothing";
    for (void* p : keep) free(p);
}

}  // namespace
