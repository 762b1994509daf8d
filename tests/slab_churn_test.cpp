// Slab churn under a swinging live set (issue 21 item 4, p99 latency).
//
// bench_latency keeps a live set that swings between 5% and 100% of its
// peak.  Each shrink emptied slabs back into the page heap and the next
// growth made them again, one new slab per refill: 2.55% of its mallocs took
// the slow path and most of those made a slab (page-heap lock, a cold
// descriptor, fresh page-map lines), which set the 99th percentile.  Emptied
// slabs now stay with their pair until the aging ticks find them unused for a
// whole interval (or the pair idle), so a growth that follows a shrink takes
// them back without the page heap; an idle process still gets them back.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vector>

#include <gtest/gtest.h>

#include "btmalloc.h"
#include "test_support.h"

namespace {

using btm_test::read_stats;
using btm_test::Rng;

// The sizes whose refills made bench_latency's slabs: 1-16 KiB (multi-page
// slabs of a few slots) and 16-64 KiB (one slot per slab).
size_t draw_size(Rng& rng) {
    if (rng.below(10)) return 1024 + rng.below(15 * 1024 + 1);
    return 16 * 1024 + rng.below(48 * 1024 + 1);
}

// A live set that follows a target with a 3:1 bias, as bench_latency does,
// so growth and shrinkage interleave.
class Swings {
   public:
    static constexpr uint32_t kPeak = 2000, kTrough = kPeak / 20;

    ~Swings() {
        for (char* p : live_) free(p);
    }
    void toward(uint32_t target) {
        while (live_.size() != target) {
            bool grow = (rng_.below(4) != 0) == (live_.size() < target);
            if (live_.empty()) grow = true;
            if (grow) {
                size_t n = draw_size(rng_);
                char* p = static_cast<char*>(malloc(n));
                ASSERT_NE(p, nullptr);
                memset(p, 0x5a, 64);
                for (size_t off = 4096; off < n; off += 4096) p[off] = 1;
                live_.push_back(p);
            } else {
                size_t k = rng_.below(live_.size());
                free(live_[k]);
                live_[k] = live_.back();
                live_.pop_back();
            }
        }
    }

   private:
    Rng rng_{1};
    std::vector<char*> live_;
};

void sleep_ms(long ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, nullptr);
}

TEST(SlabChurn, AGrowthAfterAShrinkReusesTheEmptiedSlabs) {
    Swings w;
    uint64_t made0 = read_stats().slabs_made;
    w.toward(Swings::kPeak);
    w.toward(Swings::kTrough);
    uint64_t first = read_stats().slabs_made - made0;
    constexpr int kSwings = 6;
    uint64_t made1 = read_stats().slabs_made;
    for (int i = 0; i < kSwings; ++i) {
        w.toward(Swings::kPeak);
        w.toward(Swings::kTrough);
    }
    uint64_t later = read_stats().slabs_made - made1;
    printf("slabs made: %llu in the first swing, %llu in the next %d\n", static_cast<unsigned long long>(first),
           static_cast<unsigned long long>(later), kSwings);
    ASSERT_GT(first, 500u) << "the workload should need hundreds of slabs";
    // Remade every swing: ~90% of the first swing's count each time.
    EXPECT_LT(later, first * kSwings / 4) << "each swing made its slabs again";
}

TEST(SlabChurn, AnIdleProcessReturnsTheKeptSlabs) {
    Swings w;
    for (int i = 0; i < 2; ++i) {
        w.toward(Swings::kPeak);
        w.toward(Swings::kTrough);
    }
    struct btm_stats at_trough = read_stats();
    printf("at the trough: %llu bytes in kept empty slabs, %llu slabs\n",
           static_cast<unsigned long long>(at_trough.kept_slab_bytes),
           static_cast<unsigned long long>(at_trough.slabs));
    ASSERT_GT(at_trough.kept_slab_bytes, 4u << 20) << "the shrink kept no emptied slabs for the next growth";
    // The process makes no allocator call now: only the background thread's
    // aging ticks (250 ms) can give the kept slabs back to the page heap,
    // within two of them, and their pages to the kernel a tick later.
    auto released_since = [&](const struct btm_stats& s) {
        return s.released_bytes_sync + s.released_bytes_async - at_trough.released_bytes_sync -
               at_trough.released_bytes_async;
    };
    struct btm_stats now = at_trough;
    for (int waited = 0; waited < 10000; waited += 50) {
        if (!now.kept_slab_bytes && released_since(now) >= at_trough.kept_slab_bytes / 2) break;
        sleep_ms(50);
        now = read_stats();
    }
    uint64_t released = released_since(now);
    printf("after idling: %llu bytes kept, %llu slabs, %llu bytes released\n",
           static_cast<unsigned long long>(now.kept_slab_bytes), static_cast<unsigned long long>(now.slabs),
           static_cast<unsigned long long>(released));
    EXPECT_EQ(now.kept_slab_bytes, 0u) << "kept slabs stayed with an idle process";
    EXPECT_GE(released, at_trough.kept_slab_bytes / 2) << "the kept slabs' pages did not go back to the kernel";
    EXPECT_LT(now.slabs, at_trough.slabs);
}

}  // namespace
