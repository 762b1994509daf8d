// Every libc allocation entry point and every C++ operator new/delete form,
// checked against the behaviour glibc documents (RELIABILITY.md rows 3-5).
//
// The binary links libbtmalloc.so, so the library's exported malloc, free and
// operator new override libc's for the whole process.  Built with
// BTM_TEST_AGAINST_GLIBC=ON it links nothing extra, and every test that states
// glibc behaviour must pass on glibc unchanged; tests about btmalloc itself
// then skip with a reason.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "btmalloc.h"
#include "test_support.h"

// Entry points that glibc 2.36 headers do not declare (free_sized and
// free_aligned_sized are C23; cfree and __posix_memalign are not in any
// header).  Weak, so the test links on a libc without them and can skip.
extern "C" {
void cfree(void* p) __attribute__((weak));
void free_sized(void* p, size_t size) __attribute__((weak));
void free_aligned_sized(void* p, size_t alignment, size_t size) __attribute__((weak));
int __posix_memalign(void** out, size_t alignment, size_t size) __attribute__((weak));
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* p, size_t size);
void __libc_free(void* p);
void* __libc_memalign(size_t alignment, size_t size);
}

namespace {

using btm_test::escape;
using btm_test::kAgainstGlibc;
using btm_test::opaque;
using btm_test::page_size;

constexpr size_t kMiB = size_t{1} << 20;

// Sizes no allocator can satisfy on x86-64 (the user address space is 128 TiB).
const size_t kImpossibleSizes[] = {
    SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096, SIZE_MAX / 2 + 1, size_t{PTRDIFF_MAX},
    size_t{1} << 48,
};

// Every byte of [p, p + n) can be written and read back.
void expect_writable(void* p, size_t n, uint64_t tag) {
    btm_test::fill_pattern(p, n, tag);
    EXPECT_EQ(btm_test::check_pattern(p, n, tag), n) << "size " << n;
}

// ---------------------------------------------------------------- malloc

TEST(Malloc, ZeroReturnsDistinctFreeablePointers) {
    void* a = malloc(opaque(size_t{0}));
    void* b = malloc(opaque(size_t{0}));
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_NE(a, b);
    expect_writable(a, malloc_usable_size(a), 1);
    free(a);
    free(b);
}

TEST(Malloc, ImpossibleSizeFailsWithEnomem) {
    for (size_t size : kImpossibleSizes) {
        errno = 0;
        void* p = malloc(opaque(size));
        escape(p);
        EXPECT_EQ(p, nullptr) << "malloc(" << size << ")";
        EXPECT_EQ(errno, ENOMEM) << "malloc(" << size << ")";
        free(p);
    }
}

TEST(Malloc, SmallSizesAreAlignedForTheirTypes) {
    // Any object type that fits in n bytes has an alignment dividing both n
    // and alignof(max_align_t).
    for (size_t n = 1; n <= 1024; ++n) {
        void* p = malloc(opaque(n));
        ASSERT_NE(p, nullptr);
        size_t need = std::min(alignof(max_align_t), n & (~n + 1));
        EXPECT_TRUE(btm_test::is_aligned(p, need)) << "malloc(" << n << ") = " << p;
        free(p);
    }
}

TEST(Malloc, SizesAcrossClassesAreUsableAndAligned) {
    std::vector<std::pair<void*, size_t>> live;
    for (size_t n = 1; n <= 64 * kMiB; n = n * 3 / 2 + 1) {
        void* p = malloc(opaque(n));
        ASSERT_NE(p, nullptr) << n;
        EXPECT_TRUE(btm_test::is_aligned(p, std::min<size_t>(16, n & (~n + 1)))) << n;
        btm_test::fill_pattern(p, n, n);
        live.emplace_back(p, n);
    }
    for (auto [p, n] : live) {
        EXPECT_EQ(btm_test::check_pattern(p, n, n), n) << "object of size " << n << " was overwritten";
        free(p);
    }
}

// ---------------------------------------------------------------- calloc

TEST(Calloc, ReturnsZeroedMemory) {
    for (size_t n : {size_t{1}, size_t{8}, size_t{100}, size_t{4096}, size_t{100000}, 3 * kMiB}) {
        auto* p = static_cast<unsigned char*>(calloc(1, opaque(n)));
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(btm_test::first_nonzero(p, n), n) << "calloc(1, " << n << ")";
        free(p);
        p = static_cast<unsigned char*>(calloc(opaque(n), 4));
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(btm_test::first_nonzero(p, 4 * n), 4 * n) << "calloc(" << n << ", 4)";
        free(p);
    }
}

TEST(Calloc, ZeroesReusedDirtyMemory) {
    const size_t sizes[] = {1, 8, 16, 24, 48, 64, 100, 256, 1000, 4096, 5000, 40000, 300000, kMiB, 3 * kMiB};
    for (size_t n : sizes) {
        for (int round = 0; round < 8; ++round) {
            void* dirty = malloc(opaque(n));
            ASSERT_NE(dirty, nullptr);
            memset(dirty, 0xAA, malloc_usable_size(dirty));
            escape(dirty);
            free(dirty);
            auto* p = static_cast<unsigned char*>(calloc(opaque(n), 1));
            ASSERT_NE(p, nullptr);
            ASSERT_EQ(btm_test::first_nonzero(p, n), n)
                << "calloc(" << n << ", 1) returned dirty bytes (round " << round
                << (p == dirty ? ", same address as the freed block)" : ")");
            free(p);
        }
    }
}

TEST(Calloc, OverflowFailsWithEnomem) {
    const std::pair<size_t, size_t> cases[] = {
        {SIZE_MAX, 2}, {2, SIZE_MAX}, {size_t{1} << 32, size_t{1} << 32},
        {SIZE_MAX / 16 + 1, 16}, {size_t{1} << 63, 2},
    };
    for (auto [count, size] : cases) {
        errno = 0;
        void* p = calloc(opaque(count), opaque(size));
        escape(p);
        EXPECT_EQ(p, nullptr) << "calloc(" << count << ", " << size << ")";
        EXPECT_EQ(errno, ENOMEM) << "calloc(" << count << ", " << size << ")";
        free(p);
    }
}

TEST(Calloc, ImpossibleProductFailsWithEnomem) {
    errno = 0;
    void* p = calloc(opaque(size_t{1}), opaque(SIZE_MAX));
    escape(p);
    EXPECT_EQ(p, nullptr);
    EXPECT_EQ(errno, ENOMEM);
}

TEST(Calloc, ZeroProductReturnsFreeablePointer) {
    for (auto [count, size] : {std::pair<size_t, size_t>{0, 0}, {0, SIZE_MAX}, {SIZE_MAX, 0}}) {
        void* p = calloc(opaque(count), opaque(size));
        EXPECT_NE(p, nullptr) << "calloc(" << count << ", " << size << ")";
        free(p);
    }
}

// ---------------------------------------------------------------- realloc

TEST(Realloc, NullPointerActsAsMalloc) {
    void* p = realloc(nullptr, opaque(size_t{100}));
    ASSERT_NE(p, nullptr);
    EXPECT_GE(malloc_usable_size(p), 100u);
    expect_writable(p, 100, 7);
    free(p);
    void* z = realloc(nullptr, opaque(size_t{0}));
    EXPECT_NE(z, nullptr) << "realloc(NULL, 0) is malloc(0) on glibc";
    free(z);
}

// The block malloc(0) returned is a block like any other: realloc grows it
// (glibc gives it 24 usable bytes).
TEST(Realloc, GrowsTheBlockOfMallocZero) {
    for (size_t n : {size_t{1}, size_t{100}, size_t{3000}, size_t{40000}, kMiB}) {
        void* p = malloc(opaque(size_t{0}));
        ASSERT_NE(p, nullptr);
        void* q = realloc(p, opaque(n));
        ASSERT_NE(q, nullptr) << "realloc(malloc(0), " << n << ")";
        EXPECT_GE(malloc_usable_size(q), n);
        expect_writable(q, n, 3);
        free(q);
    }
}

TEST(Realloc, ZeroSizeFreesAndReturnsNull) {
    for (size_t n : {size_t{16}, size_t{5000}, 4 * kMiB}) {
        void* p = malloc(opaque(n));
        ASSERT_NE(p, nullptr);
        errno = 0;
        void* q = realloc(p, opaque(size_t{0}));
        EXPECT_EQ(q, nullptr) << "glibc's realloc(p, 0) frees p and returns NULL (size " << n << ")";
        EXPECT_EQ(errno, 0) << "realloc(p, 0) is not a failure";
        if (q != nullptr) free(q);
    }
}

TEST(Realloc, ImpossibleSizeKeepsTheBlock) {
    for (size_t n : {size_t{24}, size_t{3000}, 2 * kMiB}) {
        auto* p = static_cast<unsigned char*>(malloc(opaque(n)));
        ASSERT_NE(p, nullptr);
        btm_test::fill_pattern(p, n, 99);
        size_t usable = malloc_usable_size(p);
        for (size_t size : kImpossibleSizes) {
            errno = 0;
            void* q = realloc(p, opaque(size));
            escape(q);
            EXPECT_EQ(q, nullptr) << "realloc(p, " << size << ")";
            EXPECT_EQ(errno, ENOMEM) << "realloc(p, " << size << ")";
            ASSERT_EQ(btm_test::check_pattern(p, n, 99), n) << "realloc failure damaged the block";
            EXPECT_EQ(malloc_usable_size(p), usable);
        }
        free(p);
    }
}

// Walks one block through a sequence of sizes; every step must keep the
// bytes both sizes share.
void realloc_walk(const std::vector<size_t>& sizes) {
    size_t old_size = sizes[0];
    uint64_t tag = 1000;
    auto* p = static_cast<unsigned char*>(malloc(opaque(old_size)));
    ASSERT_NE(p, nullptr);
    btm_test::fill_pattern(p, old_size, tag);
    for (size_t i = 1; i < sizes.size(); ++i) {
        size_t new_size = sizes[i];
        auto* q = static_cast<unsigned char*>(realloc(p, opaque(new_size)));
        ASSERT_NE(q, nullptr) << old_size << " -> " << new_size;
        size_t keep = std::min(old_size, new_size);
        ASSERT_EQ(btm_test::check_pattern(q, keep, tag), keep)
            << "realloc " << old_size << " -> " << new_size << " lost contents";
        EXPECT_GE(malloc_usable_size(q), new_size);
        EXPECT_TRUE(btm_test::is_aligned(q, 16) || new_size < 16);
        ++tag;
        btm_test::fill_pattern(q, new_size, tag);
        p = q;
        old_size = new_size;
    }
    free(p);
}

TEST(Realloc, SmallToSmallKeepsContents) { realloc_walk({1, 7, 8, 16, 17, 24, 100, 250, 64, 33, 512, 5}); }
TEST(Realloc, SmallToLargeKeepsContents) { realloc_walk({40, 70000, 100, 2 * kMiB + 13, 16, 8 * kMiB}); }
TEST(Realloc, LargeToLargeKeepsContents) {
    realloc_walk({2 * kMiB, 3 * kMiB + 5, 16 * kMiB, 5 * kMiB, 5 * kMiB + 4096, 1 * kMiB + 1, 33 * kMiB});
}
TEST(Realloc, LargeToSmallKeepsContents) { realloc_walk({4 * kMiB, 64, 3 * kMiB, 1, 2 * kMiB, 4000}); }
TEST(Realloc, EveryStepOfAGrowingBuffer) {
    std::vector<size_t> sizes;
    for (size_t n = 1; n < 6 * kMiB; n += n / 3 + 1) sizes.push_back(n);
    realloc_walk(sizes);
}

TEST(Reallocarray, WorksLikeRealloc) {
    auto* p = static_cast<uint32_t*>(reallocarray(nullptr, opaque(size_t{10}), sizeof(uint32_t)));
    ASSERT_NE(p, nullptr);
    for (uint32_t i = 0; i < 10; ++i) p[i] = i * 7;
    p = static_cast<uint32_t*>(reallocarray(p, opaque(size_t{100000}), sizeof(uint32_t)));
    ASSERT_NE(p, nullptr);
    for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(p[i], i * 7);
    EXPECT_GE(malloc_usable_size(p), 100000 * sizeof(uint32_t));
    free(p);
}

TEST(Reallocarray, OverflowFailsWithEnomemAndKeepsTheBlock) {
    auto* p = static_cast<unsigned char*>(malloc(64));
    ASSERT_NE(p, nullptr);
    btm_test::fill_pattern(p, 64, 5);
    for (auto [count, size] : {std::pair<size_t, size_t>{SIZE_MAX, 2}, {size_t{1} << 33, size_t{1} << 31},
                               {3, SIZE_MAX / 2}}) {
        errno = 0;
        void* q = reallocarray(p, opaque(count), opaque(size));
        escape(q);
        EXPECT_EQ(q, nullptr) << "reallocarray(p, " << count << ", " << size << ")";
        EXPECT_EQ(errno, ENOMEM);
    }
    errno = 0;
    void* q = reallocarray(nullptr, opaque(SIZE_MAX), opaque(size_t{4}));
    escape(q);
    EXPECT_EQ(q, nullptr);
    EXPECT_EQ(errno, ENOMEM);
    EXPECT_EQ(btm_test::check_pattern(p, 64, 5), 64u);
    free(p);
}

// ---------------------------------------------------------------- aligned

TEST(PosixMemalign, PowerOfTwoAlignmentsFrom8To2MiB) {
    for (size_t alignment = sizeof(void*); alignment <= 2 * kMiB; alignment *= 2) {
        for (size_t size : {size_t{1}, alignment, alignment + 1, size_t{100}, 3 * alignment / 2 + 7}) {
            void* p = nullptr;
            ASSERT_EQ(posix_memalign(&p, opaque(alignment), opaque(size)), 0) << alignment << "/" << size;
            ASSERT_NE(p, nullptr);
            EXPECT_TRUE(btm_test::is_aligned(p, alignment)) << p << " alignment " << alignment;
            EXPECT_GE(malloc_usable_size(p), size);
            expect_writable(p, size, alignment + size);
            free(p);
        }
    }
}

TEST(PosixMemalign, ZeroSizeSucceeds) {
    void* p = nullptr;
    ASSERT_EQ(posix_memalign(&p, 64, opaque(size_t{0})), 0);
    EXPECT_NE(p, nullptr);
    EXPECT_TRUE(btm_test::is_aligned(p, 64));
    free(p);
}

TEST(PosixMemalign, BadAlignmentIsEinvalAndLeavesOutUntouched) {
    // Not a power of two, or not a multiple of sizeof(void*).
    for (size_t alignment : {size_t{0}, size_t{1}, size_t{2}, size_t{4}, size_t{3}, size_t{12}, size_t{24},
                             size_t{48}, size_t{100}, size_t{4095}, size_t{4097}, size_t{3} << 20,
                             SIZE_MAX, SIZE_MAX / 2 + 2}) {
        void* sentinel = reinterpret_cast<void*>(0x5eed);
        void* out = sentinel;
        errno = 0;
        EXPECT_EQ(posix_memalign(&out, opaque(alignment), 64), EINVAL) << "alignment " << alignment;
        EXPECT_EQ(out, sentinel) << "alignment " << alignment;
    }
}

TEST(PosixMemalign, ImpossibleSizeIsEnomemAndLeavesOutUntouched) {
    for (size_t size : kImpossibleSizes) {
        void* sentinel = reinterpret_cast<void*>(0x5eed);
        void* out = sentinel;
        EXPECT_EQ(posix_memalign(&out, 64, opaque(size)), ENOMEM) << "size " << size;
        EXPECT_EQ(out, sentinel) << "size " << size;
    }
}

TEST(AlignedAlloc, AlignmentsFrom16To2MiBWithAnySize) {
    for (size_t alignment = 16; alignment <= 2 * kMiB; alignment *= 2) {
        // glibc accepts sizes that are not a multiple of the alignment.
        for (size_t size : {size_t{1}, alignment - 1, alignment, alignment + 1, 5 * alignment / 2 + 3}) {
            void* p = aligned_alloc(opaque(alignment), opaque(size));
            ASSERT_NE(p, nullptr) << "aligned_alloc(" << alignment << ", " << size << ")";
            EXPECT_TRUE(btm_test::is_aligned(p, alignment)) << p << " alignment " << alignment;
            EXPECT_GE(malloc_usable_size(p), size);
            expect_writable(p, size, alignment ^ size);
            free(p);
        }
    }
}

TEST(AlignedAlloc, ImpossibleSizeFailsWithEnomem) {
    for (size_t size : kImpossibleSizes) {
        errno = 0;
        void* p = aligned_alloc(64, opaque(size));
        escape(p);
        EXPECT_EQ(p, nullptr) << size;
        EXPECT_EQ(errno, ENOMEM) << size;
    }
}

TEST(Memalign, NonPowerOfTwoAlignmentRoundsUp) {
    const std::pair<size_t, size_t> cases[] = {
        {24, 32}, {48, 64}, {96, 128}, {1000, 1024}, {3000, 4096}, {5000, 8192}, {65537, 131072},
    };
    for (auto [alignment, rounded] : cases) {
        void* p = memalign(opaque(alignment), 100);
        ASSERT_NE(p, nullptr) << "memalign(" << alignment << ", 100)";
        EXPECT_TRUE(btm_test::is_aligned(p, rounded)) << "memalign(" << alignment << ") = " << p;
        EXPECT_GE(malloc_usable_size(p), 100u);
        free(p);
    }
}

TEST(Memalign, SmallAlignmentsGiveMallocAlignment) {
    for (size_t alignment : {size_t{0}, size_t{1}, size_t{2}, size_t{8}, size_t{16}}) {
        void* p = memalign(opaque(alignment), 48);
        ASSERT_NE(p, nullptr) << alignment;
        EXPECT_TRUE(btm_test::is_aligned(p, 16)) << alignment;
        free(p);
    }
}

TEST(Memalign, PowerOfTwoAlignmentsUpTo2MiB) {
    for (size_t alignment = 32; alignment <= 2 * kMiB; alignment *= 2) {
        void* p = memalign(opaque(alignment), opaque(alignment / 2 + 1));
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(btm_test::is_aligned(p, alignment));
        expect_writable(p, alignment / 2 + 1, alignment);
        free(p);
    }
}

TEST(Valloc, IsPageAligned) {
    const size_t page = page_size();
    for (size_t size : {size_t{0}, size_t{1}, page - 1, page, page + 1, 3 * page, 5 * kMiB}) {
        void* p = valloc(opaque(size));
        ASSERT_NE(p, nullptr) << "valloc(" << size << ")";
        EXPECT_TRUE(btm_test::is_aligned(p, page)) << p;
        EXPECT_GE(malloc_usable_size(p), size);
        expect_writable(p, size, size);
        free(p);
    }
    errno = 0;
    void* p = valloc(opaque(SIZE_MAX));
    escape(p);
    EXPECT_EQ(p, nullptr);
    EXPECT_EQ(errno, ENOMEM);
}

TEST(Pvalloc, RoundsUpToWholePages) {
    const size_t page = page_size();
    for (size_t size : {size_t{1}, page - 1, page, page + 1, 3 * page + 5}) {
        void* p = pvalloc(opaque(size));
        ASSERT_NE(p, nullptr) << "pvalloc(" << size << ")";
        EXPECT_TRUE(btm_test::is_aligned(p, page));
        size_t whole = (size + page - 1) / page * page;
        EXPECT_GE(malloc_usable_size(p), whole) << "pvalloc(" << size << ")";
        expect_writable(p, whole, size);
        free(p);
    }
    errno = 0;
    void* p = pvalloc(opaque(SIZE_MAX - 10));
    escape(p);
    EXPECT_EQ(p, nullptr);
    EXPECT_EQ(errno, ENOMEM);
}

TEST(Pvalloc, ZeroIsPageAligned) {
    void* p = pvalloc(opaque(size_t{0}));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(btm_test::is_aligned(p, page_size()));
    free(p);
}

TEST(Pvalloc, ZeroIsOneWholePage) {
    if constexpr (kAgainstGlibc) {
        GTEST_SKIP() << "glibc 2.36 rounds pvalloc(0) to 1 byte (ALIGN_UP written as & -(pagesize - 1)); "
                        "RELIABILITY.md row 4 asks btmalloc for one page";
    } else {
        void* p = pvalloc(opaque(size_t{0}));
        ASSERT_NE(p, nullptr);
        EXPECT_GE(malloc_usable_size(p), page_size());
        expect_writable(p, page_size(), 3);
        free(p);
    }
}

// ---------------------------------------------------------------- usable size

TEST(MallocUsableSize, AtLeastTheRequestWritableAndStable) {
    std::vector<void*> blocks;
    std::vector<size_t> usable;
    std::vector<size_t> sizes;
    for (size_t n = 0; n <= 256; ++n) sizes.push_back(n);
    for (size_t n = 257; n <= 8 * kMiB; n = n * 5 / 4 + 3) sizes.push_back(n);
    for (size_t n : sizes) {
        void* p = malloc(opaque(n));
        ASSERT_NE(p, nullptr);
        size_t u = malloc_usable_size(p);
        EXPECT_GE(u, n);
        btm_test::fill_pattern(p, u, u + n);
        blocks.push_back(p);
        usable.push_back(u);
    }
    // Churn in between, so a size derived from mutable state would change.
    for (int i = 0; i < 2000; ++i) free(malloc(opaque(static_cast<size_t>(i % 300))));
    for (size_t i = 0; i < blocks.size(); ++i) {
        EXPECT_EQ(malloc_usable_size(blocks[i]), usable[i]) << "size " << sizes[i];
        EXPECT_EQ(malloc_usable_size(blocks[i]), usable[i]) << "size " << sizes[i];
        EXPECT_EQ(btm_test::check_pattern(blocks[i], usable[i], usable[i] + sizes[i]), usable[i])
            << "the tail up to malloc_usable_size of a " << sizes[i] << "-byte block was overwritten";
        free(blocks[i]);
    }
}

TEST(MallocUsableSize, NullIsZero) { EXPECT_EQ(malloc_usable_size(opaque<void*>(nullptr)), 0u); }

// ---------------------------------------------------------------- free

TEST(Free, NullIsANoOp) {
    errno = 4321;
    free(opaque<void*>(nullptr));
    EXPECT_EQ(errno, 4321);
}

TEST(Free, PreservesErrno) {
    const size_t sizes[] = {1, 64, 4000, 70000, 3 * kMiB, 40 * kMiB};
    for (size_t n : sizes) {
        std::vector<void*> blocks;
        for (int i = 0; i < 300; ++i) blocks.push_back(malloc(opaque(n)));
        for (void* p : blocks) {
            ASSERT_NE(p, nullptr);
            errno = 1234;
            free(p);
            ASSERT_EQ(errno, 1234) << "free of a " << n << "-byte block changed errno";
        }
    }
    void* p = aligned_alloc(4096, opaque(size_t{10}));
    errno = 1234;
    free(p);
    EXPECT_EQ(errno, 1234) << "free of an aligned block changed errno";
    p = malloc(100);
    errno = 1234;
    EXPECT_EQ(realloc(p, opaque(size_t{0})), nullptr);
    EXPECT_EQ(errno, 1234) << "realloc(p, 0) changed errno";
}

TEST(Free, Cfree) {
    if (cfree == nullptr) GTEST_SKIP() << "this process has no cfree (not exported by btmalloc, not bound in libc)";
    void* p = malloc(opaque(size_t{40}));
    ASSERT_NE(p, nullptr);
    errno = 1234;
    cfree(p);
    EXPECT_EQ(errno, 1234);
    cfree(nullptr);
}

TEST(Free, FreeSized) {
    if (free_sized == nullptr) GTEST_SKIP() << "free_sized is not defined in this process (glibc 2.36 lacks it)";
    for (size_t n : {size_t{0}, size_t{1}, size_t{48}, size_t{5000}, 3 * kMiB}) {
        void* p = malloc(opaque(n));
        ASSERT_NE(p, nullptr);
        errno = 1234;
        free_sized(p, n);
        EXPECT_EQ(errno, 1234);
        p = calloc(opaque(n), 1);
        ASSERT_NE(p, nullptr);
        free_sized(p, n);
    }
    free_sized(nullptr, 0);
}

TEST(Free, FreeAlignedSized) {
    if (free_aligned_sized == nullptr)
        GTEST_SKIP() << "free_aligned_sized is not defined in this process (glibc 2.36 lacks it)";
    for (size_t alignment : {size_t{16}, size_t{64}, size_t{4096}, 2 * kMiB}) {
        for (size_t n : {size_t{1}, size_t{100}, 3 * alignment}) {
            void* p = aligned_alloc(opaque(alignment), opaque(n));
            ASSERT_NE(p, nullptr);
            errno = 1234;
            free_aligned_sized(p, alignment, n);
            EXPECT_EQ(errno, 1234);
        }
    }
    free_aligned_sized(nullptr, 64, 0);
}

// ---------------------------------------------------------------- introspection

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
TEST(Introspection, MallinfoAndMallinfo2AreCallable) {
    void* p = malloc(opaque(size_t{1000}));
    struct mallinfo a = mallinfo();
    struct mallinfo2 b = mallinfo2();
    escape(&a);
    escape(&b);
    free(p);
}
#pragma GCC diagnostic pop

TEST(Introspection, MalloptReturnsZeroOrOne) {
    int r = mallopt(M_MMAP_THRESHOLD, opaque(1 << 20));
    EXPECT_TRUE(r == 0 || r == 1) << r;
    r = mallopt(M_TRIM_THRESHOLD, opaque(4 << 20));
    EXPECT_TRUE(r == 0 || r == 1) << r;
}

TEST(Introspection, MallocTrimReturnsZeroOrOne) {
    std::vector<void*> blocks;
    for (int i = 0; i < 1000; ++i) blocks.push_back(malloc(opaque(size_t{3000})));
    for (void* p : blocks) free(p);
    int r = malloc_trim(0);
    EXPECT_TRUE(r == 0 || r == 1) << r;
    r = malloc_trim(opaque(size_t{1} << 20));
    EXPECT_TRUE(r == 0 || r == 1) << r;
}

TEST(Introspection, MallocStatsDoesNotCrash) {
    void* p = malloc(opaque(size_t{77}));
    fflush(stderr);
    int saved = dup(2);
    ASSERT_GE(saved, 0);
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    ASSERT_GE(null_fd, 0);
    ASSERT_EQ(dup2(null_fd, 2), 2);
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(null_fd);
    free(p);
}

TEST(Introspection, MallocInfoReturnsZero) {
    FILE* f = fopen("/dev/null", "w");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(malloc_info(0, f), 0);
    fclose(f);
}

// ---------------------------------------------------------------- __libc_* aliases

TEST(LibcAliases, BehaveLikeThePublicFunctions) {
    auto* a = static_cast<unsigned char*>(__libc_malloc(opaque(size_t{300})));
    ASSERT_NE(a, nullptr);
    btm_test::fill_pattern(a, 300, 1);
    a = static_cast<unsigned char*>(__libc_realloc(a, opaque(size_t{70000})));
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(btm_test::check_pattern(a, 300, 1), 300u);
    auto* c = static_cast<unsigned char*>(__libc_calloc(opaque(size_t{100}), 10));
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(btm_test::first_nonzero(c, 1000), 1000u);
    void* m = __libc_memalign(opaque(size_t{256}), 10);
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(btm_test::is_aligned(m, 256));
    // Mixed on purpose: a block from one name must be freeable by another.
    free(a);
    __libc_free(c);
    free(m);
    void* p = malloc(opaque(size_t{50}));
    __libc_free(p);
}

TEST(LibcAliases, PosixMemalignAlias) {
    if (__posix_memalign == nullptr) GTEST_SKIP() << "__posix_memalign is not exported by glibc 2.36";
    void* p = nullptr;
    ASSERT_EQ(__posix_memalign(&p, 512, opaque(size_t{10})), 0);
    EXPECT_TRUE(btm_test::is_aligned(p, 512));
    void* out = reinterpret_cast<void*>(0x5eed);
    EXPECT_EQ(__posix_memalign(&out, opaque(size_t{24}), 10), EINVAL);
    EXPECT_EQ(out, reinterpret_cast<void*>(0x5eed));
    free(p);
}

// ---------------------------------------------------------------- the override itself

// Symbols that must all bind to libbtmalloc.so, or two allocators mix
// (RELIABILITY.md row 3).
const char* const kEntryPoints[] = {
    "malloc", "calloc", "realloc", "reallocarray", "free", "cfree", "free_sized", "free_aligned_sized",
    "memalign", "aligned_alloc", "posix_memalign", "valloc", "pvalloc", "malloc_usable_size", "mallinfo",
    "mallinfo2", "malloc_trim", "mallopt", "malloc_info", "malloc_stats", "__libc_malloc", "__libc_calloc",
    "__libc_realloc", "__libc_free", "__libc_memalign", "__libc_valloc", "__libc_pvalloc", "__posix_memalign",
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

TEST(Override, EveryEntryPointBindsToBtmalloc) {
    if constexpr (kAgainstGlibc) {
        GTEST_SKIP() << "built against glibc: nothing is overridden";
    } else {
        for (const char* name : kEntryPoints) {
            void* sym = dlsym(RTLD_DEFAULT, name);
            if (sym == nullptr) {
                ADD_FAILURE() << name << " is not defined in the process";
                continue;
            }
            Dl_info info{};
            ASSERT_NE(dladdr(sym, &info), 0) << name;
            EXPECT_NE(strstr(info.dli_fname, "libbtmalloc"), nullptr)
                << name << " binds to " << info.dli_fname << ", not to libbtmalloc";
        }
    }
}

TEST(Override, EveryAllocationFunctionReturnsBtmallocMemory) {
    if constexpr (kAgainstGlibc) {
        GTEST_SKIP() << "built against glibc: btm_usable_size is not linked";
    } else {
        std::vector<std::pair<const char*, void*>> got;
        got.emplace_back("malloc", malloc(opaque(size_t{10})));
        got.emplace_back("calloc", calloc(opaque(size_t{10}), 3));
        got.emplace_back("realloc", realloc(nullptr, opaque(size_t{10})));
        got.emplace_back("reallocarray", reallocarray(nullptr, opaque(size_t{10}), 3));
        got.emplace_back("memalign", memalign(opaque(size_t{128}), 10));
        got.emplace_back("aligned_alloc", aligned_alloc(opaque(size_t{128}), 10));
        got.emplace_back("valloc", valloc(opaque(size_t{10})));
        got.emplace_back("pvalloc", pvalloc(opaque(size_t{10})));
        got.emplace_back("__libc_malloc", __libc_malloc(opaque(size_t{10})));
        got.emplace_back("__libc_calloc", __libc_calloc(opaque(size_t{10}), 2));
        got.emplace_back("__libc_realloc", __libc_realloc(nullptr, opaque(size_t{10})));
        got.emplace_back("__libc_memalign", __libc_memalign(opaque(size_t{64}), 10));
        void* pm = nullptr;
        EXPECT_EQ(posix_memalign(&pm, 64, opaque(size_t{10})), 0);
        got.emplace_back("posix_memalign", pm);
        if (__posix_memalign != nullptr) {
            void* pm2 = nullptr;
            EXPECT_EQ(__posix_memalign(&pm2, 64, opaque(size_t{10})), 0);
            got.emplace_back("__posix_memalign", pm2);
        } else {
            ADD_FAILURE() << "__posix_memalign is not defined";
        }
        for (auto [name, p] : got) {
            ASSERT_NE(p, nullptr) << name;
            EXPECT_GT(btm_usable_size(p), 0u) << name << " returned memory btmalloc does not own";
            free(p);
        }
        void* n = ::operator new(opaque(size_t{24}));
        EXPECT_GT(btm_usable_size(n), 0u) << "operator new returned memory btmalloc does not own";
        ::operator delete(n);
        void* an = ::operator new[](opaque(size_t{24}), std::align_val_t{256});
        EXPECT_GT(btm_usable_size(an), 0u) << "aligned operator new[] returned memory btmalloc does not own";
        ::operator delete[](an, std::align_val_t{256});
    }
}

// ---------------------------------------------------------------- C++ operators

TEST(OperatorNew, PlainAndArrayForms) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{24}, size_t{1000}, size_t{70000}, 3 * kMiB}) {
        void* a = ::operator new(opaque(n));
        void* b = ::operator new[](opaque(n));
        void* c = ::operator new(opaque(n), std::nothrow);
        void* d = ::operator new[](opaque(n), std::nothrow);
        for (void* p : {a, b, c, d}) {
            ASSERT_NE(p, nullptr) << n;
            EXPECT_TRUE(btm_test::is_aligned(p, std::min<size_t>(__STDCPP_DEFAULT_NEW_ALIGNMENT__,
                                                                  n == 0 ? 1 : n & (~n + 1))));
            expect_writable(p, n, n);
        }
        EXPECT_NE(a, b);
        ::operator delete(a);
        ::operator delete[](b);
        ::operator delete(c, std::nothrow);
        ::operator delete[](d, std::nothrow);
    }
}

TEST(OperatorNew, SizedDelete) {
    for (size_t n : {size_t{1}, size_t{16}, size_t{100}, size_t{5000}, 3 * kMiB}) {
        void* a = ::operator new(opaque(n));
        void* b = ::operator new[](opaque(n));
        expect_writable(a, n, 1);
        expect_writable(b, n, 2);
        errno = 1234;
        ::operator delete(a, n);
        ::operator delete[](b, n);
        EXPECT_EQ(errno, 1234) << "sized delete changed errno";
    }
}

TEST(OperatorNew, AlignedFormsHonourTheAlignment) {
    for (size_t alignment = 16; alignment <= 2 * kMiB; alignment *= 2) {
        std::align_val_t al{alignment};
        for (size_t n : {size_t{1}, alignment, 2 * alignment + 8}) {
            void* p[4] = {
                ::operator new(opaque(n), al),
                ::operator new[](opaque(n), al),
                ::operator new(opaque(n), al, std::nothrow),
                ::operator new[](opaque(n), al, std::nothrow),
            };
            for (void* q : p) {
                ASSERT_NE(q, nullptr);
                EXPECT_TRUE(btm_test::is_aligned(q, alignment)) << q << " alignment " << alignment;
                expect_writable(q, n, alignment);
            }
            ::operator delete(p[0], al);
            ::operator delete[](p[1], al);
            ::operator delete(p[2], al, std::nothrow);
            ::operator delete[](p[3], al, std::nothrow);
            void* s = ::operator new(opaque(n), al);
            void* t = ::operator new[](opaque(n), al);
            ::operator delete(s, n, al);
            ::operator delete[](t, n, al);
        }
    }
}

TEST(OperatorNew, NewExpressionsOfOverAlignedTypes) {
    struct alignas(256) Page256 {
        unsigned char bytes[300];
    };
    for (int i = 0; i < 100; ++i) {
        auto* one = new Page256;
        auto* many = new Page256[opaque(static_cast<size_t>(i + 1))];
        EXPECT_TRUE(btm_test::is_aligned(one, 256));
        EXPECT_TRUE(btm_test::is_aligned(many, 256));
        memset(many, i, sizeof(Page256) * static_cast<size_t>(i + 1));
        escape(one);
        escape(many);
        delete one;
        delete[] many;
    }
}

// Impossible sizes that stay impossible when rounded up to a 64 KiB alignment.
const size_t kImpossibleSizesForAlignedNew[] = {SIZE_MAX / 2 + 1, size_t{PTRDIFF_MAX}, size_t{1} << 48};

TEST(OperatorNew, HugeSizeThrowsBadAlloc) {
    for (size_t n : kImpossibleSizes) {
        EXPECT_THROW(escape(::operator new(opaque(n))), std::bad_alloc) << n;
        EXPECT_THROW(escape(::operator new[](opaque(n))), std::bad_alloc) << n;
    }
    for (size_t n : kImpossibleSizesForAlignedNew) {
        EXPECT_THROW(escape(::operator new(opaque(n), std::align_val_t{64})), std::bad_alloc) << n;
        EXPECT_THROW(escape(::operator new[](opaque(n), std::align_val_t{4096})), std::bad_alloc) << n;
    }
}

TEST(OperatorNew, NothrowHugeSizeReturnsNull) {
    for (size_t n : kImpossibleSizes) {
        EXPECT_EQ(::operator new(opaque(n), std::nothrow), nullptr) << n;
        EXPECT_EQ(::operator new[](opaque(n), std::nothrow), nullptr) << n;
    }
    for (size_t n : kImpossibleSizesForAlignedNew) {
        EXPECT_EQ(::operator new(opaque(n), std::align_val_t{64}, std::nothrow), nullptr) << n;
        EXPECT_EQ(::operator new[](opaque(n), std::align_val_t{8192}, std::nothrow), nullptr) << n;
    }
}

TEST(OperatorNew, AlignedSizeNearSizeMaxDoesNotWrap) {
    if constexpr (kAgainstGlibc) {
        GTEST_SKIP() << "libstdc++ 12's aligned operator new rounds the size up to the alignment without an "
                        "overflow check, so SIZE_MAX wraps to a small block";
    } else {
        for (size_t n : {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096}) {
            EXPECT_THROW(escape(::operator new(opaque(n), std::align_val_t{64})), std::bad_alloc) << n;
            EXPECT_THROW(escape(::operator new[](opaque(n), std::align_val_t{8192})), std::bad_alloc) << n;
            EXPECT_EQ(::operator new(opaque(n), std::align_val_t{64}, std::nothrow), nullptr) << n;
            EXPECT_EQ(::operator new[](opaque(n), std::align_val_t{8192}, std::nothrow), nullptr) << n;
        }
    }
}

int g_new_handler_calls = 0;
void counting_new_handler() {
    // The first call "frees memory" and asks for a retry; the second gives up
    // by removing itself, so operator new must then throw.
    if (++g_new_handler_calls >= 2) std::set_new_handler(nullptr);
}

TEST(OperatorNew, CallsTheNewHandlerUntilItIsRemoved) {
    g_new_handler_calls = 0;
    std::set_new_handler(counting_new_handler);
    EXPECT_THROW(escape(::operator new(opaque(SIZE_MAX / 2))), std::bad_alloc);
    EXPECT_EQ(g_new_handler_calls, 2);
    g_new_handler_calls = 0;
    std::set_new_handler(counting_new_handler);
    EXPECT_EQ(::operator new(opaque(SIZE_MAX / 2), std::nothrow), nullptr);
    EXPECT_EQ(g_new_handler_calls, 2);
    std::set_new_handler(nullptr);
}

}  // namespace
