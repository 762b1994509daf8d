// Compile-time options, attributes and the constants every layer shares.
// Build options arrive as BTM_CFG_* macros (0/1) and are turned into
// constexpr values here, so both branches of every `if constexpr` compile.
#pragma once

#include <cstddef>
#include <cstdint>

#ifndef BTM_CFG_HARDENING
#define BTM_CFG_HARDENING 1
#endif
#ifndef BTM_CFG_PARTITIONING
#define BTM_CFG_PARTITIONING 1
#endif
#ifndef BTM_CFG_OVERRIDE_LIBC
#define BTM_CFG_OVERRIDE_LIBC 1
#endif

#define BTM_INLINE inline __attribute__((always_inline))
#define BTM_NOINLINE __attribute__((noinline))
#define BTM_COLD __attribute__((noinline, cold))
#define BTM_EXPORT __attribute__((visibility("default")))
// Code every process runs at start that lives in a file laid out late (the
// config parser's line loop for the shipped all-comment btmalloc.conf, the
// setters of features each init configures): the linker puts .text.startup.*
// in front of the rest of .text, in the one 64 KiB fault-around window every
// process maps (CMakeLists.txt, tests/check_library.sh).
#define BTM_STARTUP __attribute__((section(".text.startup.btm")))
// Code a process runs late or rarely but that is no error path (the
// background thread, which maps the late code anyway for io_uring and the
// large cache's decay; malloc_trim; intern mode's slow path; obsolete entry
// points): laid out after the code with the cold code (src/os/layout.ld
// takes .text.*_unlikely), to leave the first window to the start-up code,
// but optimised as usual.
#define BTM_LATE __attribute__((section(".text.btm_unlikely")))
// Big or rarely used zero-initialised data (the boot arena, the placeholder
// cache, config buffers, forwarding pointers) goes to .lbss, after .bss: the
// small globals every process writes then fit in the page ld.so has already
// written (the end of .data) instead of being spread over four pages.
// (.lbss is x86-64's large-data section; elsewhere the attribute would make
// the arrays file-backed zeros, so there it is plain .bss.)
#if defined(__x86_64__)
#define BTM_COLD_BSS __attribute__((section(".lbss")))
#else
#define BTM_COLD_BSS
#endif
#define BTM_LIKELY(x) __builtin_expect(!!(x), 1)
#define BTM_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace btm {

// Set bits of a word.  Not __builtin_popcountll: without -mpopcnt (Debian's
// x86-64 baseline lacks the instruction) it is a call into libgcc's helper,
// which the linker puts after all of the library's own code, in a second
// 64 KiB window of it: one more page fault per process (CMakeLists.txt).
BTM_INLINE constexpr unsigned popcount64(uint64_t x) {
#if defined(__POPCNT__) || defined(__aarch64__)
    return unsigned(__builtin_popcountll(x));
#else
    x -= (x >> 1) & 0x5555555555555555ULL;
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return unsigned((x * 0x0101010101010101ULL) >> 56);
#endif
}
static_assert(popcount64(0) == 0 && popcount64(~0ULL) == 64 && popcount64(0x8000000000000101ULL) == 3);

inline constexpr bool kHardening = BTM_CFG_HARDENING;
inline constexpr bool kPartitioning = BTM_CFG_PARTITIONING;
inline constexpr bool kOverrideLibc = BTM_CFG_OVERRIDE_LIBC;

inline constexpr size_t kChunkShift = 21;  // 2 MiB chunks
inline constexpr size_t kChunkSize = size_t(1) << kChunkShift;
inline constexpr uintptr_t kChunkMask = kChunkSize - 1;
inline constexpr size_t kMinPageShift = 12;
inline constexpr size_t kMaxPagesPerChunk = kChunkSize >> kMinPageShift;  // 512

// Bin index = partition << kClassBits | size class.
inline constexpr unsigned kClassBits = 6;
inline constexpr unsigned kMaxPartitions = 1024;
inline constexpr size_t kMaxBins = size_t(kMaxPartitions) << kClassBits;

inline constexpr size_t kAlignment = 16;  // malloc's guarantee on x86-64 and arm64

}  // namespace btm
