// Issue 19: what intern mode promises once P partitions are used up.  The
// first P - 1 call sites own a partition each; every later site shares
// partition 0 with the other late ones and never reaches an earlier site's
// memory.  Run with BTM_PARTITION_MODE=intern and BTM_PARTITIONS=16: the
// sites that run before main (libc, libstdc++) take a few partitions, site<0>
// takes the next one, and sites 1..40 use up the rest.  A plain program,
// not GoogleTest, so that nothing else takes partitions first.
#include <cstdio>
#include <utility>

#include "intern_support.h"

using namespace intern_test;

namespace {

template <int... N>
std::vector<Block> churn_sites(std::integer_sequence<int, N...>) {
    std::vector<Block> all;
    auto one = [&all](std::vector<Block> b) {
        release(b);
        all.insert(all.end(), b.begin(), b.end());
    };
    (one(allocate<N + 1>(1000, 64)), ...);
    return all;
}

int failures = 0;

void check(bool ok, const char* what, size_t n) {
    printf("%s %s (%zu)\n", ok ? "ok:  " : "FAIL:", what, n);
    if (!ok) ++failures;
}

}  // namespace

int main() {
    const char* mode = getenv("BTM_PARTITION_MODE");
    const char* parts = getenv("BTM_PARTITIONS");
    if (btm_test::kAgainstGlibc || !mode || strcmp(mode, "intern") != 0 || !parts || strcmp(parts, "16") != 0) {
        fprintf(stderr, "run with BTM_PARTITION_MODE=intern BTM_PARTITIONS=16 against btmalloc\n");
        return 2;
    }
    auto early = allocate<0>(1000, 64);
    auto late = churn_sites(std::make_integer_sequence<int, 40>{});
    btm_trim();
    auto early_again = allocate<0>(1000, 64);
    check(overlapping(late, early_again) == 0, "an early site got none of the late sites' memory",
          overlapping(late, early_again));
    release(early_again);
    release(early);
    btm_trim();
    auto latest = allocate<41>(1000, 64);
    check(overlapping(early, latest) == 0 && overlapping(early_again, latest) == 0,
          "a late site got none of the early site's memory", overlapping(early, latest));
    check(overlapping(late, latest) > 0, "late sites share one partition", overlapping(late, latest));
    release(latest);
    return failures ? 1 : 0;
}
