// Size classes: a compile-time table, valid before any initialisation.
//
// Invariant: class sizes are multiples of 16 and strictly increasing; every
// power of two from 16 B to kMaxSmall is a class (aligned allocation relies on
// it); class_of(n) is the smallest class whose size is >= max(n, 1).
// Spacing: 16 B steps up to 128 B, then four classes per doubling up to
// 1 MiB, so the internal waste of a slot is below 25% (12.5% on average).
// Classes above 32 KiB have one slot per slab: a run of pages carved from a
// chunk, reused and released like any slab instead of a mapping each.
#pragma once

#include <array>

#include "core/base.h"

namespace btm {

inline constexpr size_t kMaxSmall = 1024 * 1024;
inline constexpr unsigned kNumClasses = 8 + 4 * 13;  // 16..128, then (128, 1M] in quarter steps
static_assert(kNumClasses <= (1u << kClassBits));

inline constexpr std::array<uint32_t, kNumClasses> kClassSize = [] {
    std::array<uint32_t, kNumClasses> t{};
    unsigned i = 0;
    for (uint32_t s = 16; s <= 128; s += 16) t[i++] = s;
    for (uint32_t d = 128; d < kMaxSmall; d *= 2)
        for (uint32_t q = 1; q <= 4; ++q) t[i++] = d + q * (d / 4);
    return t;
}();
static_assert(kClassSize[kNumClasses - 1] == kMaxSmall);

// Requests up to 4 KiB are classed by one table load (every class boundary
// up to there is a multiple of 16).
inline constexpr size_t kLutMax = 4096;
inline constexpr std::array<uint8_t, kLutMax / 16 + 1> kClassLut = [] {
    std::array<uint8_t, kLutMax / 16 + 1> t{};
    for (size_t i = 0; i < t.size(); ++i) {
        size_t n = i * 16;
        uint8_t c = 0;
        while (kClassSize[c] < n) ++c;
        t[i] = c;
    }
    return t;
}();

// Classes above 128 B: four per power of two.
BTM_INLINE constexpr unsigned class_of_medium(size_t n) {
    size_t m = n - 1;
    unsigned lg = 63u - unsigned(__builtin_clzll(m));  // floor(log2(n-1)) >= 7
    return 8u + (lg - 7u) * 4u + unsigned((m >> (lg - 2u)) & 3u);
}

// Precondition: n <= kMaxSmall.
BTM_INLINE constexpr unsigned class_of(size_t n) {
    return n <= kLutMax ? kClassLut[(n + 15) >> 4] : class_of_medium(n);
}

// Exact for every size up to 64 KiB and at and around every class boundary
// above (an exhaustive check to 1 MiB would exceed constexpr limits).
consteval bool class_of_exact(size_t n) {
    unsigned c = class_of(n);
    return kClassSize[c] >= n && (c == 0 || n == 0 || kClassSize[c - 1] < n);
}

consteval bool class_table_consistent() {
    for (size_t n = 0; n <= 65536; ++n)
        if (!class_of_exact(n)) return false;
    for (unsigned c = 0; c < kNumClasses; ++c)
        for (size_t n = kClassSize[c] - 1; n <= kClassSize[c] + 1 && n <= kMaxSmall; ++n)
            if (!class_of_exact(n)) return false;
    for (size_t s = 16; s <= kMaxSmall; s *= 2) {
        bool found = false;
        for (auto c : kClassSize) found |= (c == s);
        if (!found) return false;
    }
    return true;
}
static_assert(class_table_consistent());

// The start-up phase's lookup table: sizes up to 64 B go to 32 or 64 B (two
// classes instead of four: a short-lived process touches at least a data page
// per class it uses), larger ones to their ordinary class.  Coarser classes
// above 64 B (an earlier version rounded 129-512 B to 512 and 513-2048 B to
// 2 KiB) saved pages in `ls`, but a block made in the phase keeps its class
// for life: Redis's memefficiency test got 0.70 useful bytes against 0.75
// (issue 22).  So every class wastes at most 25% of a request above 64 B, in
// every phase (tests/class_waste_test.cpp).
inline constexpr uint32_t kCoarseClasses[] = {32, 64};
inline constexpr std::array<uint8_t, kLutMax / 16 + 1> kCoarseLut = [] {
    std::array<uint8_t, kLutMax / 16 + 1> t{};
    for (size_t i = 0; i < t.size(); ++i) {
        uint32_t want = kClassSize[kClassLut[i]];
        for (uint32_t s : kCoarseClasses)
            if (s >= want) {
                want = s;
                break;
            }
        uint8_t c = kClassLut[i];
        while (kClassSize[c] != want) ++c;
        t[i] = c;
    }
    return t;
}();

consteval bool coarse_waste_bounded() {
    for (size_t n = 65; n <= kLutMax; ++n)
        if (kClassSize[kCoarseLut[(n + 15) >> 4]] * 4 > n * 5) return false;
    return true;
}
static_assert(kClassSize[kCoarseLut[0]] == 32 && kClassSize[kCoarseLut[(48 + 15) >> 4]] == 64 &&
              coarse_waste_bounded());

}  // namespace btm
