// Issue 19: intern mode's promise.  With BTM_PARTITION_MODE=intern, memory
// once used by one call site's partition is never handed to another call
// site, whatever happened to it in between: emptied slabs, btm_trim(), the
// background thread's release, no warm slabs (ctest runs this binary with
// and without BTM_WARM_SLABS=0), other size classes, other threads.
//
// Each test uses call sites of its own (site<N>), so that no test sees the
// partitions another one used.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "intern_support.h"

namespace {

using namespace intern_test;

void require_intern_mode() {
    if (btm_test::kAgainstGlibc) GTEST_SKIP() << "btmalloc-only behaviour";
    const char* mode = getenv("BTM_PARTITION_MODE");
    ASSERT_TRUE(mode && strcmp(mode, "intern") == 0) << "run with BTM_PARTITION_MODE=intern (see CMakeLists.txt)";
}

TEST(Intern, SecondSiteGetsNoneOfTheFirstSitesFreedMemory) {
    require_intern_mode();
    auto a = allocate<1>(1000, 64);
    release(a);
    auto b = allocate<2>(1000, 64);
    EXPECT_EQ(overlapping(a, b), 0u) << "of 1000 blocks of site B";
    release(b);
}

TEST(Intern, NotAfterTrimEither) {
    require_intern_mode();
    // More than the other tests left free below: first fit reaches A's pages.
    auto a = allocate<3>(20000, 64);
    release(a);
    btm_trim();
    auto b = allocate<4>(20000, 64);
    EXPECT_EQ(overlapping(a, b), 0u);
    release(b);
}

// Enough freed bytes that the background thread must release pages; the
// test waits until it did, then the second site allocates as much again.
TEST(Intern, NotAfterTheBackgroundThreadReleasedThePages) {
    require_intern_mode();
    const size_t count = 16384, size = 4096;  // 64 MiB: far above the dirty budget
    auto a = allocate<5>(count, size);
    const struct btm_stats before = btm_test::read_stats();
    release(a);
    ASSERT_EQ(btm_test::read_stats().reclaim_thread, 1u) << "no background thread after freeing 64 MiB";
    uint64_t released = 0;
    for (int i = 0; i < 500; ++i) {
        struct btm_stats s = btm_test::read_stats();
        released = s.released_bytes_async + s.released_bytes_sync -
                   (before.released_bytes_async + before.released_bytes_sync);
        if (released >= count * size / 2) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_GE(released, count * size / 2) << "the background thread did not release the freed pages in 10 s";
    auto b = allocate<6>(count, size);
    EXPECT_EQ(overlapping(a, b), 0u) << "of " << count << " blocks of site B";
    release(b);
}

// The use-after-free that intern mode is for: a stale pointer into a freed
// object of one type must never reach an object of another type.
TEST(Intern, FreedFunctionPointerNeverReachesAnotherSite) {
    require_intern_mode();
    struct Handler {
        void (*call)();
        char name[40];
    };
    struct Record {
        char text[sizeof(Handler)];
    };
    static_assert(sizeof(Handler) == sizeof(Record));
    auto handlers = allocate<7>(20000, sizeof(Handler));
    for (const Block& h : handlers) reinterpret_cast<Handler*>(h.addr)->call = +[] {};
    release(handlers);
    btm_trim();
    auto records = allocate<8>(40000, sizeof(Record));
    EXPECT_EQ(overlapping(handlers, records), 0u) << "a Record overlaps a freed Handler";
    release(records);
}

template <int A, int B>
void check_sizes(size_t size_a, size_t size_b) {
    auto a = allocate<A>(400, size_a);
    release(a);
    btm_trim();
    auto b = allocate<B>(400, size_b);
    EXPECT_EQ(overlapping(a, b), 0u) << size_a << " B then " << size_b << " B";
    release(b);
}

// A partition's emptied pages may serve its own slabs of any class, never
// another partition's slabs of any class.
TEST(Intern, OtherSizesAndClasses) {
    require_intern_mode();
    check_sizes<10, 11>(16, 16);
    check_sizes<12, 13>(64, 48);
    check_sizes<14, 15>(256, 1024);
    check_sizes<16, 17>(4096, 100);
    check_sizes<18, 19>(16384, 16384);
    check_sizes<20, 21>(200000, 64);
}

// Slots freed by another thread (the remote-free path) and a third thread
// allocating at another site.
TEST(Intern, AcrossThreads) {
    require_intern_mode();
    std::vector<Block> a, b;
    std::thread([&] { a = allocate<22>(3000, 96); }).join();
    std::thread([&] { release(a); }).join();
    std::thread([&] {
        btm_trim();
        b = allocate<23>(3000, 96);
    }).join();
    EXPECT_EQ(overlapping(a, b), 0u);
    release(b);
}

// The same site gets its own memory back: intern mode costs no reuse within
// a partition.
TEST(Intern, SameSiteReusesItsMemory) {
    require_intern_mode();
    auto a = allocate<24>(1000, 64);
    release(a);
    auto again = allocate<24>(1000, 64);
    EXPECT_GT(overlapping(a, again), 500u);
    release(again);
}

}  // namespace
