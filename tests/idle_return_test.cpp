// An idle process gives back what a burst left free (issue 22 part 2, idle
// daemons).
//
// A daemon wakes, builds a few hundred KiB of request state, frees it and
// sleeps again.  glibc trims the top of its heap on that free; btmalloc left
// the emptied slabs' pages dirty for an aging tick, and in a process with
// less than 1 MiB pending nothing ever ran one: the background thread had
// not started and an idle process takes no slow path, so the pages stayed
// resident for the rest of the daemon's life.
//
// One scenario per process (a background thread starts at most once): the
// test runs alone in this binary.
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vector>

#include <gtest/gtest.h>

#include "reclaim/reclaim_probe.h"
#include "test_support.h"

namespace {

using btm_test::read_stats;
using reclaim_test::mono_ms;
using reclaim_test::sleep_ms;

// Anonymous resident bytes (RssAnon of /proc/self/status), read without the
// allocator.  File pages are left out: the library code the first release
// faults in is not the heap.
uint64_t anon_bytes() {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char* p = strstr(buf, "RssAnon:");
    return p ? strtoull(p + 8, nullptr, 10) * 1024 : 0;
}

constexpr size_t kKiB = 1024;
// Under the 1 MiB that used to start the background thread, and well over
// what the thread cache keeps: at most two batches (64 KiB) for each of the
// burst's three sizes.
constexpr size_t kBurst = 900 * kKiB;
constexpr size_t kSizes[] = {64, 256, 1024};
constexpr size_t kCacheKeeps = 3 * 64 * kKiB;
// And the background thread's stack pages (~12 KiB) and the pointer array.
constexpr size_t kSlack = kCacheKeeps + 64 * kKiB;
// The decay an idle process may take (issue 22: cached blocks within 10 s).
constexpr uint64_t kIdleMs = 10'000;

TEST(IdleReturn, AProcessThatFreesABurstAndSleepsGivesItsPagesBack) {
    if (btm_test::kAgainstGlibc) GTEST_SKIP() << "btmalloc's memory return";
    ASSERT_EQ(read_stats().reclaim_thread, 0u) << "the scenario needs a process whose thread has not started";
    std::vector<void*> blocks;
    blocks.reserve(kBurst / kSizes[0]);
    uint64_t rss0 = anon_bytes();
    size_t total = 0;
    for (size_t i = 0; total < kBurst; ++i) {
        size_t n = kSizes[i % 3];
        void* p = malloc(n);
        ASSERT_NE(p, nullptr);
        memset(p, 0x5a, n);
        blocks.push_back(p);
        total += n;
    }
    uint64_t rss_built = anon_bytes();
    ASSERT_GT(rss_built, rss0 + kBurst / 2) << "the burst did not make the heap grow";
    for (void* p : blocks) free(p);
    struct btm_stats freed = read_stats();
    // Idle: no allocator call from here on but btm_stats.
    uint64_t deadline = mono_ms() + kIdleMs, rss = anon_bytes();
    while (rss > rss0 + kSlack && mono_ms() < deadline) {
        sleep_ms(100);
        rss = anon_bytes();
    }
    struct btm_stats idle = read_stats();
    EXPECT_LE(rss, rss0 + kSlack) << "resident KiB over the start after " << kIdleMs / 1000
                                  << " s idle: " << (rss - rss0) / kKiB << " (built "
                                  << (rss_built - rss0) / kKiB << "); after the free: dirty "
                                  << freed.dirty_bytes / kKiB << " KiB, kept " << freed.kept_slab_bytes / kKiB
                                  << " KiB; idle: dirty " << idle.dirty_bytes / kKiB << " KiB, kept "
                                  << idle.kept_slab_bytes / kKiB << " KiB, reclaim thread "
                                  << idle.reclaim_thread;
}

}  // namespace
