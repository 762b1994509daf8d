// A table grown by realloc leaves no resident copies behind (issue 22 part 2).
//
// `ls -la /usr/bin` grows its file table 20.8 -> 41.6 -> 83.2 -> 166.4 ->
// 332.8 KB by realloc.  Each copy used to land in a slab class (they go to
// 1 MiB) and the freed copies, every byte written by the copy, stayed
// resident in their one-slot slabs: 312 KB, more than the table's own 332.8.
// glibc grows such blocks with mremap.  A realloc that grows a block past
// the bound now places it as a large block, and a large block grows by
// moving its pages.
//
// The chain runs after the start-up phase (an aligned allocation past 4 KiB
// ends it), where `ls` makes its table; the other checks hold for the start-up
// arena's blocks as well.  ctest runs this file with default knobs, in
// intern mode, with mesh on, and each test in a process of its own inside
// the start-up phase (each_in_phase.sh).
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <cstdio>
#include <vector>

#include "btmalloc.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace {

using btm_test::escape;
using btm_test::opaque;

constexpr size_t kKiB = 1024;
// The bound of the library (src/core/alloc.cpp, kReallocLarge): growth past
// it makes a large block.  Below it a freed copy is a freed small block like
// any other and may stay resident, so the copies of a doubling chain below
// the bound hold less than twice the bound.
constexpr size_t kBound = 64 * kKiB;

// Intern mode keeps every block up to 1 MiB in its call site's slabs (its
// promise, docs/DESIGN.md §1), so there growth past the bound copies as before.
bool intern_mode() {
    const char* m = getenv("BTM_PARTITION_MODE");
    return m && strcmp(m, "intern") == 0;
}

void leave_startup_phase() {
    void* p = aligned_alloc(8192, opaque(size_t{64}));
    escape(p);
    free(p);
}

uint64_t large_bytes() {
    struct btm_stats s {};
    s.version = BTM_STATS_VERSION;
    EXPECT_EQ(btm_stats(&s), 0);
    return s.large_bytes;
}

// Bytes of [p, p + n) on resident pages that lie wholly outside [live, live + m).
size_t resident_outside(uintptr_t p, size_t n, uintptr_t live, size_t m) {
    size_t page = btm_test::page_size();
    uintptr_t first = (p + page - 1) & ~(page - 1);
    uintptr_t end = (p + n) & ~(page - 1);
    if (end <= first) return 0;
    std::vector<unsigned char> vec((end - first) / page);
    if (mincore(reinterpret_cast<void*>(first), end - first, vec.data()) != 0) return 0;  // unmapped: not resident
    size_t bytes = 0;
    for (size_t i = 0; i < vec.size(); ++i) {
        uintptr_t a = first + i * page;
        bool in_live = a + page > live && a < live + m;
        if ((vec[i] & 1) && !in_live) bytes += page;
    }
    return bytes;
}

// `ls`'s chain, every byte written as the program fills its table.
TEST(ReallocGrowth, FreedCopiesOfAGrowingTableDoNotStayResident) {
    leave_startup_phase();
    uint64_t large_before = large_bytes();
    const size_t sizes[] = {20800, 41600, 83200, 166400, 332800};
    struct Copy {
        uintptr_t addr;
        size_t size;
    };
    std::vector<Copy> freed;
    freed.reserve(8);  // no allocation between the reallocs below
    auto* table = static_cast<unsigned char*>(malloc(opaque(sizes[0])));
    ASSERT_NE(table, nullptr);
    btm_test::fill_pattern(table, sizes[0], 7);
    for (size_t i = 1; i < sizeof sizes / sizeof sizes[0]; ++i) {
        auto* grown = static_cast<unsigned char*>(realloc(table, opaque(sizes[i])));
        ASSERT_NE(grown, nullptr);
        ASSERT_EQ(btm_test::check_pattern(grown, sizes[i - 1], 7), sizes[i - 1]) << "realloc to " << sizes[i];
        if (grown != table) freed.push_back({reinterpret_cast<uintptr_t>(table), sizes[i - 1]});
        btm_test::fill_pattern(grown, sizes[i], 7);
        table = grown;
    }
    size_t last = sizes[4];
    size_t resident = 0;
    for (const Copy& c : freed) resident += resident_outside(c.addr, c.size, reinterpret_cast<uintptr_t>(table), last);
    std::printf("freed copies: %zu, resident bytes outside the table: %zu\n", freed.size(), resident);
    if (intern_mode()) {
        EXPECT_EQ(large_bytes(), large_before) << "intern mode: a table of 332.8 KB left its call site's slabs";
    } else {
        EXPECT_LE(resident, 2 * kBound) << "the freed copies of a table grown by realloc stay resident";
        // The table itself is a large block, so its next growth moves pages.
        EXPECT_GE(large_bytes(), large_before + last) << "a table grown past the bound is not a large block";
    }
    free(table);
}

// Contents, sizes and usable sizes when a block crosses the bound both ways.
TEST(ReallocGrowth, ContentsKeptAcrossTheBound) {
    const size_t walk[] = {1000,   kBound - 16, kBound, kBound + 1, 70000,   kBound - 1, 200000, 50000,
                           300000, 100,         kBound, 2 << 20,    100000, 60000,      16,     kBound * 3};
    size_t old_size = walk[0];
    uint64_t tag = 500;
    auto* p = static_cast<unsigned char*>(malloc(opaque(old_size)));
    ASSERT_NE(p, nullptr);
    btm_test::fill_pattern(p, old_size, tag);
    for (size_t i = 1; i < sizeof walk / sizeof walk[0]; ++i) {
        size_t n = walk[i];
        auto* q = static_cast<unsigned char*>(realloc(p, opaque(n)));
        ASSERT_NE(q, nullptr) << old_size << " -> " << n;
        size_t keep = old_size < n ? old_size : n;
        ASSERT_EQ(btm_test::check_pattern(q, keep, tag), keep) << "realloc " << old_size << " -> " << n;
        size_t usable = malloc_usable_size(q);
        EXPECT_GE(usable, n) << old_size << " -> " << n;
        EXPECT_TRUE(btm_test::is_aligned(q, 16));
        // Every usable byte is the program's (hidden from _FORTIFY_SOURCE).
        ++tag;
        btm_test::fill_pattern(opaque(q), usable, tag);
        p = q;
        old_size = usable;
    }
    free(p);
}

// A block grown past the bound is large (not in intern mode), and one shrunk
// below it goes back to a slab (a large block is a page-rounded mapping: 200
// bytes there would hold a page).
TEST(ReallocGrowth, LargeOnlyWhileAboveTheBound) {
    uint64_t before = large_bytes();
    void* p = malloc(opaque(size_t{40000}));
    ASSERT_NE(p, nullptr);
    btm_test::fill_pattern(p, 40000, 3);
    p = realloc(p, opaque(size_t{90000}));
    ASSERT_NE(p, nullptr);
    if (intern_mode()) EXPECT_EQ(large_bytes(), before) << "intern mode: grown past the bound: left the slabs";
    else EXPECT_GE(large_bytes(), before + 90000) << "grown past the bound: not a large block";
    p = realloc(p, opaque(size_t{200}));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(btm_test::check_pattern(p, 200, 3), size_t{200});
    EXPECT_EQ(large_bytes(), before) << "shrunk to 200 bytes: still a large block";
    EXPECT_LT(malloc_usable_size(p), size_t{4096});
    free(p);
}

// Aligned blocks keep their bytes when realloc moves them past the bound
// (realloc promises only malloc's alignment for the result).
TEST(ReallocGrowth, AlignedBlocksAcrossTheBound) {
    for (size_t align : {size_t{64}, size_t{4096}, size_t{65536}}) {
        void* p = nullptr;
        ASSERT_EQ(posix_memalign(&p, align, opaque(size_t{30000})), 0);
        ASSERT_TRUE(btm_test::is_aligned(p, align));
        btm_test::fill_pattern(p, 30000, align);
        void* q = realloc(p, opaque(size_t{150000}));
        ASSERT_NE(q, nullptr);
        EXPECT_EQ(btm_test::check_pattern(q, 30000, align), size_t{30000}) << "alignment " << align;
        EXPECT_GE(malloc_usable_size(q), size_t{150000});
        void* r = realloc(q, opaque(size_t{20000}));
        ASSERT_NE(r, nullptr);
        EXPECT_EQ(btm_test::check_pattern(r, 20000, align), size_t{20000}) << "alignment " << align;
        free(r);
    }
}

// A buffer grown in small steps through the bound and far past it.
TEST(ReallocGrowth, SmallStepsKeepContents) {
    size_t n = 1000;
    auto* p = static_cast<unsigned char*>(malloc(opaque(n)));
    ASSERT_NE(p, nullptr);
    memset(p, 0x11, n);
    while (n < 3 * kBound * 4) {
        size_t m = n + 3000;
        p = static_cast<unsigned char*>(realloc(p, opaque(m)));
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(p[0], 0x11);
        ASSERT_EQ(p[n - 1], 0x11) << n << " -> " << m;
        memset(p + n, 0x11, m - n);
        n = m;
    }
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], 0x11) << "byte " << i << " of " << n;
    free(p);
}

// A buffer built by 1 KiB appends up to 1 MiB, freed, and built again (a
// log line, an output buffer): each build's large block grows into the
// cached pages the previous one left behind, not into fresh pages.  Growth
// by mremap alone faulted all ~240 pages of each build afresh.
TEST(ReallocGrowth, RepeatedAppendsReuseFreedPages) {
    auto build = [] {
        size_t n = 1024;
        auto* p = static_cast<unsigned char*>(malloc(opaque(n)));
        memset(p, 0x22, n);
        while (n < 1024 * kKiB) {
            p = static_cast<unsigned char*>(realloc(p, opaque(n + 1024)));
            if (!p) return false;
            memset(p + n, 0x22, 1024);
            n += 1024;
        }
        bool ok = p[0] == 0x22 && p[n / 2] == 0x22;
        free(p);
        return ok;
    };
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(build());  // the cache starts at the first reuse
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    constexpr int kBuilds = 10;
    for (int i = 0; i < kBuilds; ++i) ASSERT_TRUE(build());
    getrusage(RUSAGE_SELF, &after);
    long faults = after.ru_minflt - before.ru_minflt;
    std::printf("page faults per build: %.1f\n", double(faults) / kBuilds);
    EXPECT_LE(faults, 32 * kBuilds) << "each build of the buffer faulted its pages afresh";
}

}  // namespace
