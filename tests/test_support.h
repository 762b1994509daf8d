// Helpers shared by the btmalloc tests: byte patterns that identify an object,
// barriers that stop the compiler from folding allocator calls away, and the
// switch that says whether the binary was linked against btmalloc or is
// checking its assertions against glibc's allocator.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

#include "btmalloc.h"

#ifndef BTM_TEST_AGAINST_GLIBC
#define BTM_TEST_AGAINST_GLIBC 0
#endif
#ifndef BTM_TEST_HARDENING
#define BTM_TEST_HARDENING 1
#endif

namespace btm_test {

// True when the test binary runs on glibc's malloc (BTM_TEST_AGAINST_GLIBC=ON):
// tests of glibc-documented behaviour must then pass unchanged, and tests of
// btmalloc-only behaviour skip with a reason.
inline constexpr bool kAgainstGlibc = BTM_TEST_AGAINST_GLIBC != 0;
// The library was built with BTM_HARDENING (double-free and invalid-free checks).
inline constexpr bool kHardening = BTM_TEST_HARDENING != 0;

// Hides a value from the optimiser, so a constant size such as SIZE_MAX reaches
// the allocator at run time instead of being folded or warned about.
template <class T>
inline T opaque(T v) {
    asm volatile("" : "+r"(v));
    return v;
}

// Makes a pointer escape, so a malloc/free pair cannot be elided and the
// result of malloc cannot be assumed non-null.
inline void escape(const void* p) { asm volatile("" : : "r"(p) : "memory"); }

// For a death test's child: its abort leaves no core file behind.
inline void no_core_dump() {
    struct rlimit none {0, 0};
    setrlimit(RLIMIT_CORE, &none);
}

inline size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

inline bool is_aligned(const void* p, size_t alignment) {
    return (reinterpret_cast<uintptr_t>(p) & (alignment - 1)) == 0;
}

// The pattern word at word index i of an object tagged `tag`.  Every byte of
// an object depends on both its tag and its position, so a stale, shifted or
// overlapping copy is detected.
inline uint64_t pattern_word(uint64_t tag, size_t i) {
    uint64_t x = tag * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    return x | 1;  // never all zero, so a zeroed page does not pass
}

inline uint8_t pattern_byte(uint64_t tag, size_t offset) {
    return static_cast<uint8_t>(pattern_word(tag, offset / 8) >> (8 * (offset % 8)));
}

inline void fill_pattern(void* p, size_t n, uint64_t tag) {
    auto* b = static_cast<unsigned char*>(p);
    size_t words = n / 8;
    for (size_t i = 0; i < words; ++i) {
        uint64_t w = pattern_word(tag, i);
        __builtin_memcpy(b + 8 * i, &w, 8);
    }
    for (size_t off = words * 8; off < n; ++off) b[off] = pattern_byte(tag, off);
}

// Returns the offset of the first byte in [0, n) that does not hold the
// pattern of `tag`, or n if all do.
inline size_t check_pattern(const void* p, size_t n, uint64_t tag) {
    const auto* b = static_cast<const unsigned char*>(p);
    size_t words = n / 8;
    for (size_t i = 0; i < words; ++i) {
        uint64_t w;
        __builtin_memcpy(&w, b + 8 * i, 8);
        if (w != pattern_word(tag, i)) {
            for (size_t off = 8 * i;; ++off)
                if (b[off] != pattern_byte(tag, off)) return off;
        }
    }
    for (size_t off = words * 8; off < n; ++off)
        if (b[off] != pattern_byte(tag, off)) return off;
    return n;
}

inline size_t first_nonzero(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i)
        if (b[i] != 0) return i;
    return n;
}

// Multiplier read from BTM_STRESS_SCALE (default 1, about 20 s of stress on two
// cores; 10 for a soak).
inline unsigned stress_scale() {
    const char* s = getenv("BTM_STRESS_SCALE");
    if (s == nullptr || *s == '\0') return 1;
    long v = strtol(s, nullptr, 10);
    return v < 1 ? 1u : static_cast<unsigned>(v);
}

// A small, fast, seedable generator (xorshift64*); tests must be reproducible
// from the printed seed.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x2545F4914F6CDD1Dull + 0x9E3779B97F4A7C15ull) {
        if (s == 0) s = 1;
    }
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
    bool chance(unsigned percent) { return below(100) < percent; }
    // A size whose bit length is uniform in [0, max_bits]: log-uniform, with 0
    // and 1 included.
    size_t log_uniform(unsigned max_bits) {
        unsigned bits = static_cast<unsigned>(below(max_bits + 1));
        if (bits == 0) return 0;
        size_t lo = size_t{1} << (bits - 1);
        return lo + below(lo);
    }
};

// btmalloc's counters (foreign_frees, invalid_frees, ...); a failure is
// printed, and the zeroed counters make the caller's comparison fail.
inline struct btm_stats read_stats() {
    struct btm_stats st {};
    st.version = BTM_STATS_VERSION;
    if (btm_stats(&st) != 0) fprintf(stderr, "btm_stats failed\n");
    return st;
}

}  // namespace btm_test
