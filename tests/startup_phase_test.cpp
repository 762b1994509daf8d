// The start-up phase (knob startup_bytes, src/core/alloc.cpp): a process's
// first small blocks are packed into the boot arena and no heap exists
// until a block below 64 KiB does not fit in what is left of startup_bytes,
// or it asks for an alignment the arena cannot give.  ctest runs this with
// BTM_STARTUP_BYTES=512k, so gtest's own start leaves room; the tests run in
// file order and the last two end the phase.
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "btmalloc.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace {

using btm_test::escape;
using btm_test::is_aligned;
using btm_test::no_core_dump;
using btm_test::opaque;

struct btm_stats stats() {
    struct btm_stats s {};
    s.version = BTM_STATS_VERSION;
    btm_stats(&s);
    return s;
}

bool in_phase() { return stats().chunks == 0; }

// Runs fn in a child process (which may end the phase: this one stays in
// it); the child must exit with 0.
void expect_child_succeeds(int (*fn)()) {
    pid_t pid = fork();
    ASSERT_NE(pid, -1);
    if (pid == 0) _exit(fn());
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

TEST(StartupPhase, AProcessStartsWithoutAHeap) {
    struct btm_stats s = stats();
    EXPECT_EQ(s.chunks, 0u) << "the heap was made before main: gtest took more than BTM_STARTUP_BYTES?";
    EXPECT_GT(s.malloc_calls_slow, 0u) << "gtest's start did not allocate through btmalloc";
    EXPECT_GT(s.allocated_bytes, 0u) << "the arena's blocks are not counted";
}

TEST(StartupPhase, BlocksArePackedWithExactSizes) {
    ASSERT_TRUE(in_phase());
    char* a = static_cast<char*>(malloc(opaque(size_t{24})));
    char* b = static_cast<char*>(malloc(opaque(size_t{40})));
    char* c = static_cast<char*>(malloc(opaque(size_t{100})));
    escape(a), escape(b), escape(c);
    // 16-byte granules and a 16-byte header: no size class rounding.
    EXPECT_EQ(malloc_usable_size(a), 32u);
    EXPECT_EQ(malloc_usable_size(b), 48u);
    EXPECT_EQ(malloc_usable_size(c), 112u);
    EXPECT_EQ(b - a, 48);
    EXPECT_EQ(c - b, 64);
    for (char* p : {a, b, c}) EXPECT_TRUE(is_aligned(p, 16));
    memset(a, 1, 24), memset(b, 2, 40), memset(c, 3, 100);
    free(a), free(b), free(c);
}

TEST(StartupPhase, CallocIsZeroAndReallocKeepsTheContents) {
    ASSERT_TRUE(in_phase());
    auto* z = static_cast<unsigned char*>(calloc(opaque(size_t{10}), 100));
    ASSERT_NE(z, nullptr);
    for (size_t i = 0; i < 1000; ++i) ASSERT_EQ(z[i], 0) << "byte " << i;
    char* p = static_cast<char*>(malloc(opaque(size_t{50})));
    for (int i = 0; i < 50; ++i) p[i] = char(i);
    char* q = static_cast<char*>(realloc(p, opaque(size_t{3000})));
    ASSERT_NE(q, nullptr);
    EXPECT_NE(q, p);
    EXPECT_GE(malloc_usable_size(q), 3000u);
    for (int i = 0; i < 50; ++i) ASSERT_EQ(q[i], char(i)) << "byte " << i;
    char* r = static_cast<char*>(realloc(q, opaque(size_t{20})));
    ASSERT_NE(r, nullptr);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(r[i], char(i)) << "byte " << i;
    free(r);
    free(z);
    EXPECT_TRUE(in_phase());
}

// malloc(0) gives a block of its own like any other, and realloc grows it
// (a zero-byte phase block once had a recorded size of 0, which realloc
// took for a pointer of no block and refused: threads_test caught it).
TEST(StartupPhase, ZeroByteBlocksAreDistinctAndGrow) {
    ASSERT_TRUE(in_phase());
    char* a = static_cast<char*>(malloc(opaque(size_t{0})));
    char* b = static_cast<char*>(malloc(opaque(size_t{0})));
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_NE(a, b);
    EXPECT_EQ(malloc_usable_size(a), 16u);
    char* q = static_cast<char*>(realloc(a, opaque(size_t{3000})));
    ASSERT_NE(q, nullptr) << "realloc refused a zero-byte block";
    memset(q, 7, 3000);
    EXPECT_EQ(b[0], 0) << "the grown block overlapped the next one";
    free(q);
    free(b);
}

TEST(StartupPhase, FreedBlocksAreNeverHandedOutAgain) {
    ASSERT_TRUE(in_phase());
    void* p = malloc(opaque(size_t{64}));
    escape(p);
    free(p);
    for (int i = 0; i < 100; ++i) {
        void* q = malloc(opaque(size_t{64}));
        escape(q);
        ASSERT_NE(q, p) << "a freed start-up block was reused";
        free(q);
    }
}

TEST(StartupPhase, AlignedBlocksHonourTheAlignment) {
    ASSERT_TRUE(in_phase());
    for (size_t align : {size_t{32}, size_t{64}, size_t{256}, size_t{4096}}) {
        void* p = nullptr;
        ASSERT_EQ(posix_memalign(&p, align, opaque(size_t{100})), 0);
        EXPECT_TRUE(is_aligned(p, align)) << "alignment " << align;
        memset(p, 0x11, 100);
        free(p);
        void* q = aligned_alloc(align, opaque(align * 2));
        ASSERT_NE(q, nullptr);
        EXPECT_TRUE(is_aligned(q, align)) << "alignment " << align;
        free(q);
    }
    EXPECT_TRUE(in_phase());
}

TEST(StartupPhase, LargeBlocksDoNotEndThePhase) {
    ASSERT_TRUE(in_phase());
    for (size_t n : {size_t{65536}, size_t{100000}, size_t{3} << 20}) {
        auto* p = static_cast<unsigned char*>(malloc(opaque(n)));
        ASSERT_NE(p, nullptr);
        memset(p, 0x77, n);
        EXPECT_GE(malloc_usable_size(p), n);
        auto* q = static_cast<unsigned char*>(realloc(p, opaque(n + 8192)));
        ASSERT_NE(q, nullptr);
        EXPECT_EQ(q[n - 1], 0x77);
        free(q);
    }
    EXPECT_TRUE(in_phase()) << "a large block made the heap";
}

// Issue 20: a process whose memory is start-up large blocks reported
// large_bytes = 0 and allocated_bytes = 0.
TEST(StartupPhase, LargeBlocksAreCountedInStats) {
    ASSERT_TRUE(in_phase());
    struct btm_stats before = stats();
    constexpr size_t kBlock = size_t{3} << 20;
    std::vector<void*> blocks;
    for (int i = 0; i < 10; ++i) {
        blocks.push_back(malloc(opaque(kBlock)));
        ASSERT_NE(blocks.back(), nullptr);
        escape(blocks.back());
    }
    struct btm_stats during = stats();
    ASSERT_TRUE(in_phase());
    EXPECT_GE(during.large_bytes, before.large_bytes + 10 * kBlock);
    EXPECT_GE(during.allocated_bytes, before.allocated_bytes + 10 * kBlock);
    for (void* p : blocks) free(p);
    struct btm_stats after = stats();
    EXPECT_LE(after.large_bytes, during.large_bytes - 10 * kBlock);
}

// Issue 20: allocated_bytes counted every byte the arena had handed out,
// freed blocks included.
TEST(StartupPhase, StatsCountLiveBlocksOnly) {
    ASSERT_TRUE(in_phase());
    struct btm_stats before = stats();
    std::vector<void*> blocks;
    for (int i = 0; i < 10; ++i) {
        blocks.push_back(malloc(opaque(size_t{1000})));
        escape(blocks.back());
    }
    struct btm_stats during = stats();
    ASSERT_TRUE(in_phase());
    EXPECT_GE(during.allocated_bytes, before.allocated_bytes + 10 * 1000);
    for (void* p : blocks) free(p);
    struct btm_stats after = stats();
    EXPECT_LE(after.allocated_bytes + 10 * 1000, during.allocated_bytes) << "freed start-up blocks still counted";
}

TEST(StartupPhase, AnInteriorPointerIsCountedAndIgnored) {
    ASSERT_TRUE(in_phase());
    auto* p = static_cast<unsigned char*>(malloc(opaque(size_t{64})));
    auto* next = static_cast<unsigned char*>(malloc(opaque(size_t{64})));
    memset(p, 0x5a, 64);
    memset(next, 0xa5, 64);
    uint64_t before = stats().invalid_frees;
    free(p + 16);
    free(p + 8);
    EXPECT_EQ(stats().invalid_frees, before + 2);
    // Nothing was written: both blocks are intact and free normally.
    for (int i = 0; i < 64; ++i) ASSERT_EQ(p[i], 0x5a);
    for (int i = 0; i < 64; ++i) ASSERT_EQ(next[i], 0xa5);
    EXPECT_EQ(malloc_usable_size(p + 16), 0u);
    free(p);
    free(next);
}

// In a child: another thread's first malloc ends the phase, so no two
// threads' blocks are packed onto one cache line (bench_scratch: each write
// of one thread evicted the other's block).  The first thread's blocks stay
// valid.
int second_thread_child() {
    char* mine = static_cast<char*>(malloc(opaque(size_t{24})));
    memset(mine, 'm', 24);
    if (!in_phase()) return 100;
    char* theirs = nullptr;
    std::thread t([&] {
        theirs = static_cast<char*>(malloc(opaque(size_t{24})));
        memset(theirs, 't', 24);
    });
    t.join();
    if (in_phase()) return 101;
    uintptr_t a = reinterpret_cast<uintptr_t>(mine), b = reinterpret_cast<uintptr_t>(theirs);
    if (a / 64 == b / 64) return 102;
    int bad = 0;
    for (int i = 0; i < 24; ++i) bad += mine[i] != 'm' || theirs[i] != 't';
    free(theirs);
    free(mine);
    return bad ? 1 : 0;
}

TEST(StartupPhase, AnotherThreadsFirstMallocEndsIt) {
    ASSERT_TRUE(in_phase());
    expect_child_succeeds(second_thread_child);
    EXPECT_TRUE(in_phase());
}

// In a child: small blocks until the heap appears.  The phase takes about
// startup_bytes (512 KiB here, of which gtest already used some).
TEST(StartupPhase, EndsWhenTheBudgetIsUsed) {
    ASSERT_TRUE(in_phase());
    pid_t pid = fork();
    ASSERT_NE(pid, -1);
    if (pid == 0) {
        size_t bytes = 0;
        while (in_phase() && bytes < (size_t{1} << 21)) {
            void* p = malloc(opaque(size_t{1000}));
            escape(p);
            bytes += 1000;
        }
        _exit(!in_phase() && bytes < (size_t{512} << 10) && bytes > (size_t{256} << 10) ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    EXPECT_TRUE(in_phase());
}

// In a child: 40 KiB blocks come from the arena too (opendir's buffer is
// 32 KiB), until one does not fit in what is left of startup_bytes; that
// one ends the phase, and the blocks made in it stay valid.
int medium_block_child() {
    int bad = 0;
    std::vector<char*> early;
    for (int i = 0; i < 50; ++i) {
        early.push_back(static_cast<char*>(malloc(opaque(size_t(16 + i * 8)))));
        memset(early.back(), i, size_t(16 + i * 8));
    }
    if (!in_phase()) return 100;
    constexpr size_t kMedium = 40 << 10;
    std::vector<char*> medium;
    size_t in_arena = 0;
    while (in_phase()) {
        if (medium.size() > 100) return 101;  // 4 MiB and still no heap
        char* m = static_cast<char*>(malloc(opaque(kMedium)));
        if (!m) return 102;
        memset(m, int(medium.size()), kMedium);
        medium.push_back(m);
        if (in_phase()) {
            ++in_arena;
            if (malloc_usable_size(m) != kMedium) return 103;  // not packed in the arena
        }
    }
    if (in_arena == 0) return 104;  // a 40 KiB block ended the phase at once
    void* small = malloc(opaque(size_t{24}));
    if (malloc_usable_size(small) != 32) return 105;  // a size class now
    if (stats().slabs == 0) return 106;
    // Issue 20: the start-up blocks still live are counted after the phase.
    if (stats().allocated_bytes < in_arena * kMedium) return 108;
    for (size_t i = 0; i < medium.size(); ++i)
        for (size_t k = 0; k < kMedium; k += 512) bad += medium[i][k] != char(i);
    for (int i = 0; i < 50; ++i) {
        for (int k = 0; k < 16 + i * 8; ++k) bad += early[size_t(i)][k] != char(i);
        bad += malloc_usable_size(early[size_t(i)]) != size_t((16 + i * 8 + 15) & ~15);
        char* moved = static_cast<char*>(realloc(early[size_t(i)], opaque(size_t(200))));
        if (!moved) return 107;
        for (int k = 0; k < 16 + i * 8 && k < 200; ++k) bad += moved[k] != char(i);
        free(moved);
    }
    for (char* m : medium) free(m);
    free(small);
    return bad ? 1 : 0;
}

TEST(StartupPhase, AMediumBlockThatDoesNotFitEndsItAndEarlierBlocksStayValid) {
    ASSERT_TRUE(in_phase());
    expect_child_succeeds(medium_block_child);
}

// Next to last, because the death test's own bookkeeping in this process
// may end the phase: the child it forks is still in it.
__attribute__((noipa)) void* allocate_victim(size_t n) { return malloc(opaque(n)); }
__attribute__((noipa)) void free_once(void* p) {
    free(p);
    escape(p);
}

TEST(StartupPhase, DoubleFreeAbortsNamingTheCallSites) {
    if constexpr (!btm_test::kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    ASSERT_TRUE(in_phase());
    auto body = [] {
        no_core_dump();
        void* p = allocate_victim(72);
        free_once(p);
        free_once(p);
    };
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT),
                "btmalloc: double free of 0x[0-9a-f]+ \\(a start-up block of 80 bytes\\) in free\\(\\) called from "
                "startup_phase_test\\+0x[0-9a-f]+; allocated from call site startup_phase_test\\+0x[0-9a-f]+");
}

// Last, because a second thread ends the phase: it allocates (and so ends
// the phase, racing the forks) while the main thread forks; the child can
// allocate and free (the phase's blocks and new heap blocks alike).
TEST(StartupPhase, ForkWhileAnotherThreadAllocates) {
    std::atomic<bool> stop{false};
    // Bounded: every block the thread frees stays taken (300 x 48 bytes).
    std::thread t([&] {
        for (int i = 0; i < 300 && !stop.load(); ++i) {
            std::this_thread::yield();
            void* p = malloc(opaque(size_t{32}));
            escape(p);
            free(p);
            void* big = malloc(opaque(size_t{70000}));
            escape(big);
            free(big);
        }
    });
    std::vector<char*> kept;
    for (int i = 0; i < 20; ++i) {
        kept.push_back(static_cast<char*>(malloc(opaque(size_t{40}))));
        memset(kept.back(), 'k', 40);
    }
    for (int round = 0; round < 20; ++round) {
        pid_t pid = fork();
        ASSERT_NE(pid, -1);
        if (pid == 0) {
            int bad = 0;
            for (char* k : kept) {
                for (int i = 0; i < 40; ++i) bad += k[i] != 'k';
                free(k);
            }
            for (int i = 0; i < 2000; ++i) {  // past the phase: the child makes its heap
                void* p = malloc(opaque(size_t(16 + (i * 37) % 20000)));
                if (!p) ++bad;
                free(p);
            }
            _exit(bad ? 1 : 0);
        }
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "round " << round << " status " << status;
    }
    stop = true;
    t.join();
    for (char* k : kept) free(k);
}

}  // namespace
