// The start-up phase of size classes (kCoarseClass in src/core/size_classes.h):
// a process's first mallocs round sizes up to 4 KiB to a power of two, so a
// short-lived process touches a data page for each of ~7 classes instead of
// ~20, until a thread has made 65,536 of them or the heap outgrows the knob
// partition_after; then every size gets its own class.  With
// partition_after = 0 there is no such phase.  Runs in a process of its own
// (ctest runs it twice: default knobs, and BTM_PARTITION_AFTER=0).
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include <gtest/gtest.h>

#include "test_support.h"

namespace {

using btm_test::escape;
using btm_test::opaque;

struct Case {
    size_t request, coarse, fine;
};
// The fine classes: 16-byte steps to 128, then four per doubling.
constexpr Case kCases[] = {{48, 64, 48}, {80, 128, 80}, {200, 256, 224}, {3000, 4096, 3072}, {5000, 5120, 5120}};

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
    // 70,000 mallocs end the phase however small the heap stays.
    for (int i = 0; i < 70000; ++i) {
        void* p = malloc(opaque(size_t{24}));
        escape(p);
        free(p);
    }
    for (const Case& c : kCases) EXPECT_EQ(usable_of_new(c.request), c.fine) << "request " << c.request;
    // Blocks from the phase keep their size and free normally after it.
    for (size_t i = 0; i < early.size(); ++i) {
        EXPECT_EQ(malloc_usable_size(early[i]), phase ? kCases[i].coarse : kCases[i].fine);
        free(early[i]);
    }
}

}  // namespace
