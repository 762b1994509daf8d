// The prefixed API of include/btmalloc.h, linked from the static library.
// Each btm_* function must behave exactly like its libc counterpart (same
// errno, same edge cases), and btm_stats must report what the process did.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "btmalloc.h"
#include "test_support.h"

namespace {

using btm_test::escape;
using btm_test::opaque;
using btm_test::read_stats;

constexpr size_t kMiB = size_t{1} << 20;
const size_t kImpossibleSizes[] = {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2 + 1, size_t{PTRDIFF_MAX},
                                   size_t{1} << 48};

TEST(BtmMalloc, ZeroIsNonNullAndFreeable) {
    void* a = btm_malloc(opaque(size_t{0}));
    void* b = btm_malloc(opaque(size_t{0}));
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_NE(a, b);
    btm_free(a);
    btm_free(b);
}

TEST(BtmMalloc, ImpossibleSizeFailsWithEnomem) {
    for (size_t n : kImpossibleSizes) {
        errno = 0;
        void* p = btm_malloc(opaque(n));
        escape(p);
        EXPECT_EQ(p, nullptr) << n;
        EXPECT_EQ(errno, ENOMEM) << n;
    }
}

TEST(BtmMalloc, UsableSizeIsAtLeastTheRequestAndStable) {
    struct Block {
        void* p;
        size_t n, usable;
    };
    std::vector<Block> blocks;
    for (size_t n = 0; n < 16 * kMiB; n = n * 4 / 3 + 1) {
        void* p = btm_malloc(opaque(n));
        ASSERT_NE(p, nullptr);
        size_t u = btm_usable_size(p);
        EXPECT_GE(u, n);
        EXPECT_TRUE(btm_test::is_aligned(p, std::min<size_t>(16, n == 0 ? 1 : n & (~n + 1)))) << n;
        btm_test::fill_pattern(p, u, n);
        blocks.push_back({p, n, u});
    }
    for (const Block& b : blocks) {
        EXPECT_EQ(btm_usable_size(b.p), b.usable) << b.n;
        EXPECT_EQ(btm_test::check_pattern(b.p, b.usable, b.n), b.usable)
            << "bytes up to btm_usable_size of a " << b.n << "-byte block were overwritten";
        btm_free(b.p);
    }
    EXPECT_EQ(btm_usable_size(nullptr), 0u);
}

TEST(BtmMalloc, ContentsSurviveUntilFree) {
    std::vector<std::pair<void*, size_t>> blocks;
    for (size_t n = 1; n < 4 * kMiB; n = n * 3 / 2 + 1) {
        void* p = btm_malloc(opaque(n));
        ASSERT_NE(p, nullptr);
        btm_test::fill_pattern(p, n, n * 31);
        blocks.emplace_back(p, n);
    }
    for (auto [p, n] : blocks) {
        EXPECT_EQ(btm_test::check_pattern(p, n, n * 31), n) << "block of " << n << " bytes overwritten";
        btm_free(p);
    }
}

TEST(BtmFree, NullAndErrno) {
    errno = 1234;
    btm_free(nullptr);
    EXPECT_EQ(errno, 1234);
    for (size_t n : {size_t{8}, size_t{3000}, 5 * kMiB}) {
        void* p = btm_malloc(n);
        ASSERT_NE(p, nullptr);
        errno = 1234;
        btm_free(p);
        EXPECT_EQ(errno, 1234) << "btm_free of " << n << " bytes changed errno";
    }
}

TEST(BtmCalloc, ZeroesReusedMemoryAndDetectsOverflow) {
    for (size_t n : {size_t{16}, size_t{200}, size_t{4096}, size_t{50000}, 3 * kMiB}) {
        for (int round = 0; round < 4; ++round) {
            void* dirty = btm_malloc(n);
            ASSERT_NE(dirty, nullptr);
            memset(dirty, 0xAA, btm_usable_size(dirty));
            escape(dirty);
            btm_free(dirty);
            void* p = btm_calloc(opaque(n), 1);
            ASSERT_NE(p, nullptr);
            EXPECT_EQ(btm_test::first_nonzero(p, n), n) << "btm_calloc(" << n << ", 1)";
            btm_free(p);
        }
    }
    for (auto [count, size] : {std::pair<size_t, size_t>{SIZE_MAX, 2}, {size_t{1} << 32, size_t{1} << 32},
                               {1, SIZE_MAX}}) {
        errno = 0;
        void* p = btm_calloc(opaque(count), opaque(size));
        escape(p);
        EXPECT_EQ(p, nullptr) << count << " x " << size;
        EXPECT_EQ(errno, ENOMEM);
    }
    void* z = btm_calloc(0, opaque(SIZE_MAX));
    EXPECT_NE(z, nullptr);
    btm_free(z);
}

TEST(BtmRealloc, GlibcEdgeCases) {
    void* p = btm_realloc(nullptr, opaque(size_t{50}));
    ASSERT_NE(p, nullptr);
    btm_test::fill_pattern(p, 50, 3);
    for (size_t n : kImpossibleSizes) {
        errno = 0;
        void* q = btm_realloc(p, opaque(n));
        escape(q);
        EXPECT_EQ(q, nullptr) << n;
        EXPECT_EQ(errno, ENOMEM) << n;
    }
    EXPECT_EQ(btm_test::check_pattern(p, 50, 3), 50u) << "a failed btm_realloc damaged the block";
    EXPECT_EQ(btm_realloc(p, opaque(size_t{0})), nullptr) << "btm_realloc(p, 0) frees and returns NULL";
}

TEST(BtmRealloc, KeepsContentsAcrossClasses) {
    const size_t sizes[] = {1, 24, 100, 3000, 70000, 2 * kMiB, 9 * kMiB, 3 * kMiB, 500, 8, 4 * kMiB, 64};
    size_t old = 10;
    uint64_t tag = 1;
    void* p = btm_malloc(old);
    ASSERT_NE(p, nullptr);
    btm_test::fill_pattern(p, old, tag);
    for (size_t n : sizes) {
        void* q = btm_realloc(p, opaque(n));
        ASSERT_NE(q, nullptr);
        size_t keep = std::min(old, n);
        ASSERT_EQ(btm_test::check_pattern(q, keep, tag), keep) << old << " -> " << n;
        EXPECT_GE(btm_usable_size(q), n);
        btm_test::fill_pattern(q, n, ++tag);
        p = q;
        old = n;
    }
    btm_free(p);
}

TEST(BtmReallocarray, OverflowFailsAndKeepsTheBlock) {
    void* p = btm_reallocarray(nullptr, 10, 10);
    ASSERT_NE(p, nullptr);
    btm_test::fill_pattern(p, 100, 8);
    errno = 0;
    void* q = btm_reallocarray(p, opaque(SIZE_MAX), 2);
    escape(q);
    EXPECT_EQ(q, nullptr);
    EXPECT_EQ(errno, ENOMEM);
    EXPECT_EQ(btm_test::check_pattern(p, 100, 8), 100u);
    q = btm_reallocarray(p, opaque(size_t{1000}), 10);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(btm_test::check_pattern(q, 100, 8), 100u);
    EXPECT_GE(btm_usable_size(q), 10000u);
    btm_free(q);
}

TEST(BtmAligned, AlignedAllocPosixMemalignMemalign) {
    for (size_t alignment = 16; alignment <= 2 * kMiB; alignment *= 2) {
        for (size_t n : {size_t{1}, alignment + 3}) {
            void* a = btm_aligned_alloc(opaque(alignment), n);
            void* m = btm_memalign(opaque(alignment), n);
            void* pm = nullptr;
            ASSERT_EQ(btm_posix_memalign(&pm, opaque(alignment), n), 0);
            for (void* p : {a, m, pm}) {
                ASSERT_NE(p, nullptr);
                EXPECT_TRUE(btm_test::is_aligned(p, alignment)) << p << " " << alignment;
                EXPECT_GE(btm_usable_size(p), n);
                memset(p, 0x11, n);
                btm_free(p);
            }
        }
    }
    void* m = btm_memalign(opaque(size_t{48}), 10);
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(btm_test::is_aligned(m, 64)) << "btm_memalign rounds 48 up to 64";
    btm_free(m);
}

TEST(BtmAligned, PosixMemalignErrorsLeaveOutUntouched) {
    void* const sentinel = reinterpret_cast<void*>(0x5eed);
    for (size_t alignment : {size_t{0}, size_t{4}, size_t{24}, size_t{100}, size_t{3} << 20}) {
        void* out = sentinel;
        EXPECT_EQ(btm_posix_memalign(&out, opaque(alignment), 10), EINVAL) << alignment;
        EXPECT_EQ(out, sentinel);
    }
    for (size_t n : kImpossibleSizes) {
        void* out = sentinel;
        EXPECT_EQ(btm_posix_memalign(&out, 64, opaque(n)), ENOMEM) << n;
        EXPECT_EQ(out, sentinel);
    }
    errno = 0;
    void* p = btm_aligned_alloc(4096, opaque(SIZE_MAX));
    escape(p);
    EXPECT_EQ(p, nullptr);
    EXPECT_EQ(errno, ENOMEM);
}

TEST(BtmStats, RejectsNullAndUnknownVersions) {
    EXPECT_EQ(btm_stats(nullptr), -1);
    struct btm_stats st {};
    st.version = BTM_STATS_VERSION + 100;
    EXPECT_EQ(btm_stats(&st), -1);
    st.version = BTM_STATS_VERSION;
    EXPECT_EQ(btm_stats(&st), 0);
}

TEST(BtmStats, DescribeAHeapInUse) {
    void* p = btm_malloc(opaque(size_t{100}));
    ASSERT_NE(p, nullptr);
    struct btm_stats st = read_stats();
    EXPECT_GT(st.reserved_bytes, 0u);
    EXPECT_GT(st.committed_bytes, 0u);
    EXPECT_GE(st.reserved_bytes, st.committed_bytes);
    EXPECT_GE(st.chunks, 1u);
    EXPECT_GE(st.slabs, 1u);
    EXPECT_GE(st.partitions, 1u);
    EXPECT_GE(st.thread_caches, 1u);
    EXPECT_GT(st.malloc_calls_slow, 0u);
    EXPECT_GT(st.resident_bytes, 0u);
    btm_free(p);
}

TEST(BtmStats, LargeBytesFollowLiveLargeBlocks) {
    constexpr size_t kBlock = 8 * kMiB;
    constexpr int kCount = 8;
    struct btm_stats before = read_stats();
    std::vector<void*> blocks;
    for (int i = 0; i < kCount; ++i) {
        void* p = btm_malloc(opaque(kBlock));
        ASSERT_NE(p, nullptr);
        memset(p, i, kBlock);
        blocks.push_back(p);
    }
    struct btm_stats during = read_stats();
    EXPECT_GE(during.large_bytes, before.large_bytes + kCount * kBlock);
    // Absolute bounds: the process's other memory can shrink meanwhile (the
    // reclaim thread giving back what earlier tests freed), so a bound
    // relative to `before` would be flaky.
    EXPECT_GE(during.allocated_bytes, kCount * kBlock);
    EXPECT_GE(during.resident_bytes, kCount * kBlock);
    for (void* p : blocks) btm_free(p);
    struct btm_stats after = read_stats();
    EXPECT_LE(after.large_bytes, during.large_bytes - kCount * kBlock);
}

// The VmFlags of the mapping holding address a (/proc/self/smaps), or "".
std::string vm_flags_of(uintptr_t a) {
    FILE* f = fopen("/proc/self/smaps", "r");
    if (!f) return "";
    char line[512];
    bool inside = false;
    std::string flags;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = a >= lo && a < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            flags = line + 8;
            break;
        }
    }
    fclose(f);
    return flags;
}

// Slab memory is marked MADV_NOHUGEPAGE (every transparent huge page size):
// with THP (or a 64 KiB mTHP size) set to "always", a process's first small
// blocks would otherwise take a huge page, and pages freed one by one could
// not go back.
TEST(BtmHeap, SlabMemoryRefusesTransparentHugePages) {
    void* p = btm_malloc(opaque(size_t{64}));
    ASSERT_NE(p, nullptr);
    std::string flags = vm_flags_of(reinterpret_cast<uintptr_t>(p));
    if (flags.empty()) GTEST_SKIP() << "SKIPPED: /proc/self/smaps unreadable or without VmFlags";
    EXPECT_NE(flags.find(" nh"), std::string::npos) << "VmFlags:" << flags;
    btm_free(p);
}

// RELIABILITY.md row 15: every mapping is a VMA, and vm.max_map_count
// (65530 by default) caps them per process; an allocator that splits its
// heap into a VMA per chunk or per slab (mprotect or madvise flags on part
// of a mapping) runs a big process into it.  A heap of ~150 MiB of mixed
// small and medium blocks, 70% freed at random and trimmed, four times
// over, must stay in a handful of mappings (5 more than at the start when
// run alone here; a VMA per chunk made it 290 more).
size_t mapping_count() {
    FILE* f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    size_t n = 0;
    for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
    fclose(f);
    return n;
}

TEST(BtmHeap, AChurningHeapStaysInAFewMappings) {
    size_t before = mapping_count();
    if (before == 0) GTEST_SKIP() << "SKIPPED: /proc/self/maps unreadable";
    constexpr size_t kBlocks = 150000;
    std::vector<void*> blocks(kBlocks);
    uint64_t seed = 1;
    size_t peak = before;
    for (int round = 0; round < 4; ++round) {
        for (size_t i = 0; i < kBlocks; ++i) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t n = 16 + (seed >> 33) % (i % 50 == 0 ? 60000 : 2000);  // 2% medium blocks
            blocks[i] = btm_malloc(n);
            ASSERT_NE(blocks[i], nullptr);
            memset(blocks[i], 1, n < 64 ? n : 64);
        }
        for (size_t i = 0; i < kBlocks; ++i)
            if ((i * 7) % 10 != 0) {
                btm_free(blocks[i]);
                blocks[i] = nullptr;
            }
        btm_trim();
        size_t now = mapping_count();
        if (now > peak) peak = now;
        for (void*& b : blocks) {
            btm_free(b);
            b = nullptr;
        }
    }
    btm_trim();
    printf("mappings: %zu before, %zu at the peak\n", before, peak);
    EXPECT_LE(peak, before + 32) << "mappings grew from " << before << " to " << peak;
}

// The table of large blocks starts in a static page with room for 64 live
// ones (src/core/large.cpp) and moves to a mapping as they pass that, twice
// here; every block must stay known (usable size, free) across the moves, in
// the freeing order that leaves the most deleted slots.
TEST(BtmLarge, ManyLiveBlocksOutgrowTheFirstTable) {
    constexpr int kCount = 600;
    const size_t kBlock = 2 * kMiB + 4096;
    std::vector<unsigned char*> blocks;
    for (int i = 0; i < kCount; ++i) {
        auto* p = static_cast<unsigned char*>(btm_malloc(opaque(kBlock + size_t(i) * 4096)));
        ASSERT_NE(p, nullptr) << i;
        p[0] = static_cast<unsigned char>(i);
        blocks.push_back(p);
    }
    for (int i = 0; i < kCount; ++i) {
        EXPECT_EQ(btm_usable_size(blocks[i]), kBlock + size_t(i) * 4096) << i;
        EXPECT_EQ(blocks[i][0], static_cast<unsigned char>(i)) << i;
    }
    for (int i = 0; i < kCount; i += 2) btm_free(blocks[i]);
    for (int i = 1; i < kCount; i += 2) {
        EXPECT_EQ(btm_usable_size(blocks[i]), kBlock + size_t(i) * 4096) << i;
        btm_free(blocks[i]);
    }
    struct btm_stats s = read_stats();
    EXPECT_LT(s.large_bytes, kBlock * 4) << "freed large blocks still counted live";
}

// Blocks of classes with multi-page slabs come from fresh runs when the heap
// grows into clean memory: malloc hands them out unwritten, so their pages
// become resident only when the program writes them, and calloc does not
// clear them.  64 MiB is far beyond the dirty pages the heap may keep, so
// most of it must come from clean pages.
TEST(BtmFreshRuns, FreshBlocksStayOffTheResidentSetUntilWritten) {
    constexpr size_t kBlock = 256 * 1024;
    constexpr size_t kCount = 256;
    for (bool zeroed : {false, true}) {
        btm_trim();  // every free page back to the kernel: what follows is clean memory
        std::vector<char*> blocks;
        uint64_t rss0 = read_stats().resident_bytes;
        for (size_t i = 0; i < kCount; ++i) {
            void* p = zeroed ? btm_calloc(1, opaque(kBlock)) : btm_malloc(opaque(kBlock));
            ASSERT_NE(p, nullptr);
            blocks.push_back(static_cast<char*>(p));
        }
        uint64_t rss1 = read_stats().resident_bytes;
        EXPECT_LT(rss1, rss0 + kCount * kBlock / 4) << (zeroed ? "calloc" : "malloc") << " faulted its blocks in";
        if (zeroed) {
            for (char* p : blocks) ASSERT_EQ(btm_test::first_nonzero(p, kBlock), kBlock);
        }
        for (char* p : blocks) memset(p, 0x5a, kBlock);
        uint64_t rss2 = read_stats().resident_bytes;
        EXPECT_GT(rss2, rss1 + kCount * kBlock / 2) << "the blocks were not this process's memory";
        for (char* p : blocks) btm_free(p);
    }
}

// A thread's unused fresh run goes back to its slab when the thread exits:
// a thread that freed everything it allocated leaves no bytes allocated,
// give or take what the C library allocates for a thread (the creating
// thread's caches may take a page of a small class for that).  Two blocks
// of 1.5 or 3 KiB leave a run of 10 or more slots if it is not given back.
TEST(BtmFreshRuns, ThreadExitGivesTheRunBack) {
    for (size_t n : {size_t{1536}, size_t{3000}}) {
        btm_trim();
        int64_t before = int64_t(read_stats().allocated_bytes);
        std::thread t([n] {
            void* a = btm_malloc(opaque(n));
            void* b = btm_malloc(opaque(n));
            btm_free(a);
            btm_free(b);
        });
        t.join();
        EXPECT_NEAR(int64_t(read_stats().allocated_bytes), before, 8192) << "size " << n;
    }
}

// The page heap skips a chunk for a run longer than the longest one it last
// saw there, until pages come back and merge (docs/DESIGN.md §2).  Holes of
// 32 pages between 128 KiB blocks, then the block between two holes freed:
// the 96-page run they merge into must be found for the next 256 KiB block,
// which otherwise goes to clean memory elsewhere.  Frees run on a short
// thread, whose cache goes home when it exits; an emptied slab may then stay
// kept with its pair until an aging tick finds it unused (§6), so the test
// waits for that: the pages reach the page heap dirty (still resident) and
// stay so for a tick.  Slabs kept by the tests before would take these
// blocks out of address order: btm_trim() gives them back first.
void wait_until_no_slab_is_kept() {
    for (int ms = 0; ms < 5000 && read_stats().kept_slab_bytes; ms += 2)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_EQ(read_stats().kept_slab_bytes, 0u) << "kept slabs did not age out within 5 s";
}

TEST(BtmPageHeap, BlocksFindTheRunThatFreesMerged) {
    constexpr size_t kBlock = 128 * 1024;
    constexpr int kCount = 24;
    void* p[kCount];
    btm_trim();
    for (auto& q : p) q = btm_malloc(opaque(kBlock));
    auto at = [&](int i) { return reinterpret_cast<uintptr_t>(p[i]); };
    // First fit lays fresh one-slot slabs out in address order.
    ASSERT_EQ(at(2), at(1) + kBlock);
    ASSERT_EQ(at(3), at(2) + kBlock);
    std::thread([&] {
        for (int i = 1; i < kCount; i += 2) btm_free(p[i]);
    }).join();
    // Emptied slabs go back to the page heap, warm ones too (a pair keeps
    // its first emptied slabs warm, whichever they are: p[1]'s or p[2]'s
    // held back made the run of this test a matter of timing).
    btm_trim();
    wait_until_no_slab_is_kept();
    // These searches fail on every 32-page hole, which records the bound.
    void* other[2];
    for (auto& q : other) {
        q = btm_malloc(opaque(2 * kBlock));
        EXPECT_NE(q, p[1]);
    }
    std::thread([&] { btm_free(p[2]); }).join();
    btm_trim();
    wait_until_no_slab_is_kept();
    // A small slab made meanwhile (the thread's own allocations) may take a
    // page of the run, which still leaves room for the block.
    void* x = btm_malloc(opaque(2 * kBlock));
    uintptr_t a = reinterpret_cast<uintptr_t>(x);
    EXPECT_TRUE(a >= at(1) && a + 2 * kBlock <= at(3) + kBlock) << "the merged run of pages was not found";
    btm_free(x);
    for (auto* q : other) btm_free(q);
    for (int i = 0; i < kCount; i += 2) {
        if (i != 2) btm_free(p[i]);
    }
}

// Under mlockall the kernel refuses MADV_DONTNEED (locked pages), so a
// release cannot drop the pages; it must still leave them reading as zeros,
// since the heap hands out slots of clean pages unwritten and calloc does
// not clear them.  Run in a child: mlockall locks the whole process.
TEST(BtmFreshRuns, ReleasedPagesReadAsZerosUnderMlockall) {
    constexpr size_t kBlock = 8192;
    constexpr size_t kCount = 2048;  // 16 MiB
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // Root without CAP_SYS_RESOURCE cannot raise the limit but may lock
        // anyway (CAP_IPC_LOCK); mlockall says which.
        struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
        setrlimit(RLIMIT_MEMLOCK, &unlimited);
        if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) _exit(78);
        std::vector<void*> blocks(kCount);
        for (int round = 0; round < 2; ++round) {
            for (void*& p : blocks) {
                p = btm_malloc(kBlock);
                if (!p) _exit(2);
                memset(p, 0xAB, kBlock);
            }
            for (void* p : blocks) btm_free(p);
            btm_trim();  // every free page "released": clean from now on
            for (void*& p : blocks) {
                p = btm_calloc(1, kBlock);
                if (!p) _exit(2);
                if (btm_test::first_nonzero(p, kBlock) != kBlock) _exit(1);
            }
            for (void* p : blocks) btm_free(p);
            btm_trim();
        }
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "the child died: status " << status;
    if (WEXITSTATUS(status) == 78)
        GTEST_SKIP() << "SKIPPED: mlockall refused (needs CAP_IPC_LOCK or an RLIMIT_MEMLOCK above 16 MiB)";
    EXPECT_NE(WEXITSTATUS(status), 2) << "allocation failed under mlockall";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "btm_calloc returned a block that was not zero";
}

TEST(BtmStats, ForeignFreeIsIgnoredAndCounted) {
    int on_stack[4] = {1, 2, 3, 4};
    struct btm_stats before = read_stats();
    btm_free(opaque(&on_stack[1]));
    struct btm_stats after = read_stats();
    EXPECT_EQ(after.foreign_frees, before.foreign_frees + 1);
    EXPECT_EQ(on_stack[1], 2);
}

}  // namespace
