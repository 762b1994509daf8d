// btm_pageout_cold(): a cold data set untouched by the allocator is submitted
// for pageout, a hot set the allocator keeps touching is not, the counters
// say so, and every cold object reads back byte for byte afterwards.  With a
// swap device the cold set's RSS must also drop; without one that part is
// reported as SKIPPED (anonymous memory cannot be paged out with no swap).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "btmalloc.h"
#include "test_support.h"

namespace {

struct btm_stats stats() {
    struct btm_stats s {};
    s.version = BTM_STATS_VERSION;
    btm_stats(&s);
    return s;
}

bool have_swap() {
    std::ifstream f("/proc/swaps");
    std::string line;
    std::getline(f, line);  // header
    return static_cast<bool>(std::getline(f, line));
}

__attribute__((noipa)) void* cold_site(size_t n) {
    void* p = malloc(n);
    btm_test::escape(p);
    return p;
}

__attribute__((noipa)) void* hot_site(size_t n) {
    void* p = malloc(n);
    btm_test::escape(p);
    return p;
}

TEST(Pageout, ColdSlabsAreSubmittedHotOnesAreNotAndDataSurvives) {
    constexpr size_t kObj = 4096, kCold = 60u << 20;
    std::vector<unsigned char*> cold;
    for (size_t i = 0; i < kCold / kObj; ++i) {
        auto* p = static_cast<unsigned char*>(cold_site(kObj));
        btm_test::fill_pattern(p, kObj, i);
        cold.push_back(p);
    }
    const struct btm_stats before = stats();
    // Keep a hot set turning over (refills and flushes stamp its slabs) while
    // the cold set ages past min_age.
    std::vector<void*> hot(256, nullptr);
    for (int tick = 0; tick < 250; ++tick) {
        for (auto& p : hot) {
            free(p);
            p = hot_site(64);
        }
        usleep(10000);
    }
    const size_t submitted = btm_pageout_cold(1);
    const struct btm_stats after = stats();
    EXPECT_GE(submitted, kCold * 8 / 10) << "the cold set was not submitted";
    EXPECT_LE(submitted, kCold + (8u << 20)) << "far more than the cold set was submitted";
    EXPECT_EQ(after.pageout_requests, before.pageout_requests + 1);
    EXPECT_EQ(after.pageout_bytes, before.pageout_bytes + submitted);
    if (have_swap()) {
        EXPECT_LE(after.resident_bytes + kCold * 8 / 10, before.resident_bytes + (8u << 20))
            << "RSS did not drop by 80% of the cold set";
    } else {
        std::printf("SKIPPED: RSS drop not checked: no swap device (/proc/swaps is empty)\n");
    }
    for (size_t i = 0; i < cold.size(); ++i) {
        ASSERT_EQ(btm_test::check_pattern(cold[i], kObj, i), kObj) << "cold object " << i << " changed";
        free(cold[i]);
    }
    for (auto p : hot) free(p);
}

TEST(Pageout, AFreshHeapHasNothingColdAtAGreatAge) {
    void* p = malloc(100);
    btm_test::escape(p);
    EXPECT_EQ(btm_pageout_cold(3600), 0u) << "slabs touched this second counted as an hour cold";
    free(p);
}

}  // namespace
