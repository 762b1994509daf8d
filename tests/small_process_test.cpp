// What btmalloc does differently for a small, single-threaded process (the
// `ls` and `sh` a machine-wide preload runs most), each checked in a process
// of its own (ctest runs this file twice: default knobs, and
// BTM_PARTITION_AFTER=0).
//
// The start-up phase of size classes (g_class_lut in src/core/state.h): a
// process's first mallocs round sizes up to 64 B to 32 or 64 B, so a
// short-lived process touches a data page for each of 2 classes instead of
// 4 there, until it has made 2,048 slow-path mallocs or its heap outgrows
// the knob partition_after; then every size gets its own class.  With
// partition_after = 0 there is no such phase.  Nor does the phase read the
// clock for the slabs' stamps (cold tiering): they are 0 until a pageout or
// the end of the phase starts it, and must not read as old.
//
// ctest runs it with BTM_STARTUP_BYTES=0: the start-up arena, which comes
// before the coarse classes, has its own test (startup_phase_test.cpp).
//
// fork from the only thread: the fork handlers take no locks then
// (src/core/alloc.cpp, one_thread), and parent and child must both go on
// allocating and freeing, with the inherited blocks intact.
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "btmalloc.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace {

using btm_test::escape;
using btm_test::opaque;

struct Case {
    size_t request, coarse, fine;
};
// The fine classes: 16-byte steps to 128, then four per doubling.
// In the phase only sizes up to 64 B share classes (issue 22: above that a
// block keeps its class for life, and the waste must stay under 25%).
constexpr Case kCases[] = {{8, 32, 16},        {48, 64, 48},       {80, 80, 80},       {200, 224, 224},    {700, 768, 768},
                           {1328, 1536, 1536}, {3000, 3072, 3072}, {5000, 5120, 5120}};

size_t usable_of_new(size_t n) {
    void* p = malloc(opaque(n));
    escape(p);
    size_t u = malloc_usable_size(p);
    free(p);
    return u;
}

TEST(StartupPhase, SmallSizesShareClassesOnlyAtFirst) {
    const char* after = getenv("BTM_PARTITION_AFTER");
    const bool phase = !(after && strcmp(after, "0") == 0);
    std::vector<void*> early;
    for (const Case& c : kCases) {
        void* p = malloc(opaque(c.request));
        escape(p);
        memset(p, 0x5a, c.request);
        EXPECT_EQ(malloc_usable_size(p), phase ? c.coarse : c.fine) << "request " << c.request;
        early.push_back(p);
    }
    // Slabs stamped while the clock was off are as young as the pageout
    // that starts it: nothing here is an hour cold, in the phase or after.
    EXPECT_EQ(btm_pageout_cold(3600), 0u) << "slabs made in the start-up phase counted as an hour cold";
    // 3,000 slow-path mallocs end the phase however small the heap stays:
    // malloc_trim empties the thread's cache, so the next malloc refills.
    for (int i = 0; i < 3000; ++i) {
        void* p = malloc(opaque(size_t{24}));
        escape(p);
        free(p);
        malloc_trim(0);
    }
    for (const Case& c : kCases) EXPECT_EQ(usable_of_new(c.request), c.fine) << "request " << c.request;
    EXPECT_EQ(btm_pageout_cold(3600), 0u) << "slabs stamped after the phase counted as an hour cold";
    // Blocks from the phase keep their size and free normally after it.
    for (size_t i = 0; i < early.size(); ++i) {
        EXPECT_EQ(malloc_usable_size(early[i]), phase ? kCases[i].coarse : kCases[i].fine);
        free(early[i]);
    }
}

// Runs after the phase test (same process, gtest's order): blocks of several
// classes, some freed, then forks; each child checks and frees what it
// inherited and allocates anew, as the parent does after each fork.
TEST(ForkAlone, ParentAndChildKeepAllocating) {
    if (!__libc_single_threaded) GTEST_SKIP() << "SKIPPED: the process already had a second thread";
    std::vector<unsigned char*> blocks;
    for (size_t i = 0; i < 200; ++i) {
        size_t n = 16 + (i * 97) % 3000;
        auto* p = static_cast<unsigned char*>(malloc(opaque(n)));
        ASSERT_NE(p, nullptr);
        memset(p, int(i & 0xff), n);
        blocks.push_back(p);
    }
    auto intact = [&](size_t i) {
        size_t n = 16 + (i * 97) % 3000;
        for (size_t k = 0; k < n; ++k)
            if (blocks[i][k] != (i & 0xff)) return false;
        return true;
    };
    for (int round = 0; round < 20; ++round) {
        pid_t pid = fork();
        ASSERT_NE(pid, -1);
        if (pid == 0) {
            int bad = 0;
            for (size_t i = 0; i < blocks.size(); ++i) {
                if (!intact(i)) ++bad;
                free(blocks[i]);
            }
            for (int k = 0; k < 1000; ++k) {
                void* p = malloc(opaque(size_t(16 + k % 2000)));
                if (!p) ++bad;
                escape(p);
                free(p);
            }
            _exit(bad ? 1 : 0);
        }
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status)) << "round " << round;
        EXPECT_EQ(WEXITSTATUS(status), 0) << "round " << round << ": the child found a block changed or malloc failed";
        // The parent replaces one block per round.
        size_t i = size_t(round) * 7 % blocks.size();
        free(blocks[i]);
        size_t n = 16 + (i * 97) % 3000;
        blocks[i] = static_cast<unsigned char*>(malloc(opaque(n)));
        ASSERT_NE(blocks[i], nullptr);
        memset(blocks[i], int(i & 0xff), n);
    }
    for (size_t i = 0; i < blocks.size(); ++i) {
        EXPECT_TRUE(intact(i)) << "block " << i;
        free(blocks[i]);
    }
}

}  // namespace
