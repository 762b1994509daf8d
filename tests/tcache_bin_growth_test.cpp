// Bins that grow while their class refills often (issue 21 item 4, p99).
//
// bench_latency's slow mallocs are refills, and most of them are of the
// 1-16 KiB classes, whose bins held 2-32 slots (two batches of 32 KiB): a
// live set of 4 KiB blocks that swings refilled every 9 mallocs of its
// growth, and those refills set the 99th percentile.  A bin that refills
// again within a scavenge period now doubles its limit (so its refills take
// twice the slots) up to 256 KiB and 32 slots, the extra bytes of all grown bins
// bounded by half the thread's budget; a grown bin that does not refill for a
// whole period goes back to its two batches and sends the rest home.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include <gtest/gtest.h>

#include "btmalloc.h"
#include "test_support.h"

namespace {

using btm_test::read_stats;
using btm_test::Rng;

constexpr size_t kSize = 4096;

// A set of 4 KiB blocks that follows a target with a 3:1 bias, as
// bench_latency's live set does, so growth and shrinkage interleave.
class Oscillation {
   public:
    ~Oscillation() {
        for (char* p : live_) free(p);
    }
    // Returns the mallocs it made.
    uint64_t toward(size_t target) {
        uint64_t mallocs = 0;
        while (live_.size() != target) {
            bool grow = live_.empty() || (rng_.below(4) != 0) == (live_.size() < target);
            if (grow) {
                char* p = static_cast<char*>(malloc(kSize));
                EXPECT_NE(p, nullptr);
                if (!p) return mallocs;
                memset(p, 0x5a, 64);
                live_.push_back(p);
                ++mallocs;
            } else {
                size_t k = rng_.below(live_.size());
                free(live_[k]);
                live_[k] = live_.back();
                live_.pop_back();
            }
        }
        return mallocs;
    }
    size_t size() const { return live_.size(); }

   private:
    Rng rng_{7};
    std::vector<char*> live_;
};

constexpr size_t kPeak = 600, kTrough = 30;

TEST(TcacheBinGrowth, AHotBinRefillsInBiggerBatches) {
    Oscillation o;
    o.toward(kPeak);  // warm up: slabs made, bins grown
    o.toward(kTrough);
    uint64_t slow0 = read_stats().malloc_calls_slow, mallocs = 0;
    for (int i = 0; i < 20; ++i) {
        mallocs += o.toward(kPeak);
        mallocs += o.toward(kTrough);
    }
    uint64_t slow = read_stats().malloc_calls_slow - slow0;
    double per_1000 = 1000.0 * double(slow) / double(mallocs);
    printf("slow mallocs: %llu of %llu (%.1f per 1,000)\n", static_cast<unsigned long long>(slow),
           static_cast<unsigned long long>(mallocs), per_1000);
    // Bins of two batches (16 slots): a refill every ~9 mallocs of growth.
    EXPECT_LE(per_1000, 40.0) << "the 4 KiB bin did not grow: it refills as often as a cold one";
}

// Small blocks whose refills and flushes keep the thread's slow path (and so
// its scavenges) going while the 4 KiB class is left alone, with the cache
// far below its budget (a cache over it is trimmed whatever its bins are).
void other_work(uint32_t rounds) {
    std::vector<void*> v;
    for (uint32_t r = 0; r < rounds; ++r) {
        for (int i = 0; i < 1000; ++i) v.push_back(malloc(64));
        for (void* p : v) free(p);
        v.clear();
    }
}

// Mallocs of 4 KiB blocks up to and including the next one that takes the
// slow path: right after a refill, one more than the slots it put in the bin.
uint64_t mallocs_until_refill(std::vector<char*>& held) {
    uint64_t slow0 = read_stats().malloc_calls_slow;
    for (uint64_t n = 1; n <= 1000; ++n) {
        held.push_back(static_cast<char*>(malloc(kSize)));
        if (read_stats().malloc_calls_slow != slow0) return n;
    }
    return 0;
}

TEST(TcacheBinGrowth, AGrownBinShrinksBackWhenItsClassGoesQuiet) {
    Oscillation o;
    for (int i = 0; i < 4; ++i) {
        o.toward(kPeak);
        o.toward(kTrough);
    }
    // The shrink halved the bin's limit; growth doubles it at each refill.
    std::vector<char*> held;
    uint64_t hot = 0;
    for (int i = 0; i < 8; ++i) {
        uint64_t n = mallocs_until_refill(held);
        hot = n > hot ? n : hot;
    }
    printf("a refill of the hot 4 KiB bin: %llu slots\n", static_cast<unsigned long long>(hot - 1));
    // Two batches of 4 KiB are 16 slots, and a refill takes half of them.
    ASSERT_GT(hot - 1, 8u) << "the hot 4 KiB bin should have grown past two batches";
    // The bin was just refilled (half its limit); 12 frees fill it past two
    // batches without a flush.
    for (int i = 0; i < 12; ++i) {
        free(held.back());
        held.pop_back();
    }
    other_work(100);
    uint64_t quiet = mallocs_until_refill(held);
    printf("what the bin kept through the other work: %llu slots\n", static_cast<unsigned long long>(quiet - 1));
    for (char* p : held) free(p);
    EXPECT_LE(quiet, 16u + 1) << "a grown bin kept its slots while its class stayed quiet";
}

}  // namespace
