// The cache of freed large blocks (issue 21, item 1): replaced buffers reuse
// freed blocks instead of faulting fresh ones, blocks serve smaller and larger
// requests, calloc of a recycled block is zero in every byte, an idle process
// gives its cached blocks back within 10 s, and fork, threads and malloc_trim
// leave it consistent.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "test_support.h"

namespace {

constexpr size_t kMiB = size_t(1) << 20;

long minor_faults() {
    rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

uint64_t cached_bytes() {
    struct btm_stats s {};
    s.version = BTM_STATS_VERSION;
    if (btm_stats(&s) != 0) return ~uint64_t(0);
    return s.large_cached_bytes;
}

// Index of the first nonzero byte of p[0, n), or n.
size_t first_nonzero(const unsigned char* p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i]) return i;
    return n;
}

// The cache starts at the first sign of reuse, a large malloc after a large
// free: tests that look at it alone (gtest_filter) show that sign first.
void show_reuse() {
    free(malloc(2 * kMiB));
    free(malloc(2 * kMiB));
}

// Frees a block of n bytes written with `byte` after showing reuse: it is
// then in the cache.
void free_written_block(size_t n, int byte) {
    show_reuse();
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    memset(p, byte, n);
    free(p);
}

uint64_t next(uint64_t& s) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

// The seen case, scaled down: live buffers of 5-9 MiB (every one above the
// old fixed 4 MiB cache), one replaced at random each step, value-initialised.
TEST(LargeCache, ReplacedBuffersReuseFreedBlocks) {
    constexpr int kLive = 8, kSteps = 150;
    uint64_t rng = 42;
    auto pick = [&] { return 5 * kMiB + (next(rng) % 1024) * 4096; };
    char* bufs[kLive];
    size_t sizes[kLive];
    for (int i = 0; i < kLive; ++i) bufs[i] = new char[sizes[i] = pick()]();
    long f0 = minor_faults();
    size_t pages = 0;
    for (int s = 0; s < kSteps; ++s) {
        int i = int(next(rng) % kLive);
        delete[] bufs[i];
        sizes[i] = pick();
        bufs[i] = new char[sizes[i]]();
        pages += sizes[i] / 4096;
        ASSERT_EQ(bufs[i][sizes[i] - 1], 0);
    }
    long faults = minor_faults() - f0;
    for (char* b : bufs) delete[] b;
    EXPECT_LT(double(faults), 0.25 * double(pages))
        << faults << " page faults for " << pages << " pages of replaced buffers: freed blocks were not reused";
}

// A freed block serves a smaller request (its tail stays cached) and a larger
// one (grown); what comes back is whole and writable.
TEST(LargeCache, ReuseDownAndUp) {
    show_reuse();
    malloc_trim(0);  // no range left by other tests to fit better
    auto* a = static_cast<unsigned char*>(malloc(16 * kMiB));
    ASSERT_NE(a, nullptr);
    memset(a, 0x5a, 16 * kMiB);
    free(a);
    auto* b = static_cast<unsigned char*>(malloc(6 * kMiB));
    ASSERT_NE(b, nullptr);
    EXPECT_TRUE(b >= a && b < a + 16 * kMiB) << "a smaller request did not reuse the freed block";
    EXPECT_GE(malloc_usable_size(b), 6 * kMiB);
    EXPECT_LT(malloc_usable_size(b), 8 * kMiB) << "the block was handed out whole, not split";
    memset(b, 1, malloc_usable_size(b));
    auto* c = static_cast<unsigned char*>(malloc(9 * kMiB));  // the tail left by b
    ASSERT_NE(c, nullptr);
    memset(c, 2, 9 * kMiB);
    free(b);
    free(c);
    long f0 = minor_faults();
    auto* d = static_cast<unsigned char*>(malloc(24 * kMiB));
    ASSERT_NE(d, nullptr);
    memset(d, 3, 24 * kMiB);
    long faults = minor_faults() - f0;
    EXPECT_LT(faults, long(12 * kMiB / 4096)) << "a larger request faulted in most of its pages afresh";
    EXPECT_EQ(d[0], 3);
    EXPECT_EQ(d[24 * kMiB - 1], 3);
    void* e = realloc(d, 40 * kMiB);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(static_cast<unsigned char*>(e)[24 * kMiB - 1], 3);
    free(e);
}

// Recycled blocks were written by their last owner: calloc must clear every
// byte, whichever pieces the block is made of; a fresh one is zero too.
TEST(LargeCache, CallocIsZeroFreshAndRecycled) {
    auto* fresh = static_cast<unsigned char*>(calloc(1, 33 * kMiB + 123));
    ASSERT_NE(fresh, nullptr);
    EXPECT_EQ(first_nonzero(fresh, 33 * kMiB + 123), 33 * kMiB + 123);
    free(fresh);
    const size_t sizes[] = {7 * kMiB, 3 * kMiB + 4096, 12 * kMiB, 5 * kMiB};
    void* dirty[4];
    for (int i = 0; i < 4; ++i) {
        dirty[i] = malloc(sizes[i]);
        ASSERT_NE(dirty[i], nullptr);
        memset(dirty[i], 0xff, malloc_usable_size(dirty[i]));
    }
    for (void* p : dirty) free(p);
    for (size_t n : {2 * kMiB + 17, 6 * kMiB, 11 * kMiB, 20 * kMiB, 30 * kMiB}) {
        auto* z = static_cast<unsigned char*>(calloc(1, n));
        ASSERT_NE(z, nullptr);
        size_t bad = first_nonzero(z, n);
        EXPECT_EQ(bad, n) << "calloc(" << n << ") has a nonzero byte at " << bad;
        memset(z, 0xee, n);
        free(z);
    }
}

// Children of fork inherit the cache: reuse there must work and stay apart.
TEST(LargeCache, ForkChildReusesItsCopy) {
    free_written_block(10 * kMiB, 0x77);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        for (int i = 0; i < 20; ++i) {
            auto* z = static_cast<unsigned char*>(calloc(1, (4 + i % 9) * kMiB));
            if (!z || first_nonzero(z, (4 + i % 9) * kMiB) != (4 + i % 9) * kMiB) _exit(1);
            memset(z, 0x33, (4 + i % 9) * kMiB);
            free(z);
        }
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    auto* z = static_cast<unsigned char*>(calloc(1, 10 * kMiB));
    ASSERT_NE(z, nullptr);
    EXPECT_EQ(first_nonzero(z, 10 * kMiB), 10 * kMiB);
    free(z);
}

// Threads replacing blocks at once: each block keeps its owner's pattern.
TEST(LargeCache, ThreadsReplaceConcurrently) {
    std::vector<std::thread> ts;
    std::atomic<int> bad{0};
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([t, &bad] {
            uint64_t rng = 7 + t;
            unsigned char* held[3] = {};
            size_t len[3] = {};
            for (int s = 0; s < 60; ++s) {
                int i = int(next(rng) % 3);
                if (held[i]) {
                    if (held[i][0] != t + 1 || held[i][len[i] - 1] != t + 1 || held[i][len[i] / 2] != t + 1) ++bad;
                    free(held[i]);
                }
                len[i] = 2 * kMiB + (next(rng) % 2048) * 4096;
                held[i] = static_cast<unsigned char*>(s % 2 ? calloc(1, len[i]) : malloc(len[i]));
                if (!held[i]) {
                    ++bad;
                    return;
                }
                if (s % 2 && first_nonzero(held[i], len[i]) != len[i]) ++bad;
                memset(held[i], t + 1, len[i]);
            }
            for (unsigned char* h : held) free(h);
        });
    }
    for (auto& th : ts) th.join();
    EXPECT_EQ(bad.load(), 0);
}

TEST(LargeCache, TrimReturnsCachedBlocks) {
    free_written_block(20 * kMiB, 1);
    EXPECT_GT(cached_bytes(), 0u) << "a freed 20 MiB block was not cached";
    malloc_trim(0);
    EXPECT_EQ(cached_bytes(), 0u);
}

// An idle process gives its cached blocks back by itself within 10 s.
TEST(LargeCache, IdleProcessReturnsCachedBlocks) {
    show_reuse();
    std::vector<void*> held;
    // 3 MiB: the old fixed cache kept one of these forever.
    for (int i = 0; i < 8; ++i) {
        held.push_back(malloc(3 * kMiB));
        ASSERT_NE(held.back(), nullptr);
        memset(held.back(), 1, 3 * kMiB);
    }
    for (void* p : held) free(p);
    ASSERT_GT(cached_bytes(), 0u) << "freed blocks were not cached at all";
    for (int waited = 0; waited < 100 && cached_bytes() != 0; ++waited) usleep(100000);
    EXPECT_EQ(cached_bytes(), 0u) << "cached large blocks still held after 10 s idle";
}

}  // namespace
