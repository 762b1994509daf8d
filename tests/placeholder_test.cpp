// The empty thread cache a thread uses before it has its own (the
// placeholder, src/core/thread_cache.cpp) must read as empty for every bin
// the fast paths can index.  The static one covers the default 64
// partitions only (issue 22: a 1 MiB one was address space every process
// paid for), so a process configured with more gets a larger one at init,
// and the threads it creates must start on that one.
//
// ctest runs this with BTM_PARTITIONS=1024 and BTM_PARTITION_AFTER=0: fresh
// threads first free blocks of every call site's partition, then malloc from
// every call site, before they have a cache.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "btmalloc.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace {

constexpr int kSites = 64;

struct Site {
    void* (*alloc)(size_t);
    unsigned (*partition)();
};

// Each instantiation is a call site of its own.
template <int I>
[[gnu::noinline]] void* alloc_at(size_t n) {
    void* p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}
template <int I>
[[gnu::noinline]] unsigned partition_at() {
    unsigned part = btm_partition_of_caller();
    __asm__ volatile("" : : "r"(part) : "memory");
    return part;
}

template <int... I>
std::vector<Site> make_sites(std::integer_sequence<int, I...>) {
    return {Site{&alloc_at<I>, &partition_at<I>}...};
}
const std::vector<Site> kAll = make_sites(std::make_integer_sequence<int, kSites>{});

void* free_all(void* arg) {
    for (void* p : *static_cast<std::vector<void*>*>(arg)) free(p);
    return nullptr;
}

void* alloc_all(void*) {
    for (const Site& s : kAll) {
        auto* p = static_cast<unsigned char*>(s.alloc(48));
        if (!p) return reinterpret_cast<void*>(1);
        memset(p, 0x5a, 48);
        free(p);
    }
    return nullptr;
}

void* run_thread(void* (*fn)(void*), void* arg) {
    pthread_t t;
    if (pthread_create(&t, nullptr, fn, arg) != 0) return reinterpret_cast<void*>(2);
    void* r = nullptr;
    pthread_join(t, &r);
    return r;
}

TEST(Placeholder, FreshThreadsOfManyPartitionsStartEmpty) {
    struct btm_stats st {};
    st.version = BTM_STATS_VERSION;
    ASSERT_EQ(btm_stats(&st), 0);
    ASSERT_EQ(st.partitions, 1024u) << "run with BTM_PARTITIONS=1024 BTM_PARTITION_AFTER=0";
    unsigned high = 0;
    for (const Site& s : kAll) high = std::max(high, s.partition());
    // Past the static placeholder's 64 partitions (all 64 sites below it:
    // odds 1 in 8^64).
    ASSERT_GE(high, 128u);
    std::vector<void*> blocks;
    for (const Site& s : kAll) {
        auto* p = static_cast<unsigned char*>(s.alloc(100));
        ASSERT_NE(p, nullptr);
        memset(p, 0x33, 100);
        blocks.push_back(p);
    }
    EXPECT_EQ(run_thread(free_all, &blocks), nullptr);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(run_thread(alloc_all, nullptr), nullptr);
}

}  // namespace
