// A program that wraps mmap and its kin (a profiler, a sandbox shim, a leak
// checker) never sees btmalloc's own calls: on x86-64 and AArch64 the library
// makes them as system calls (src/os/syscall.h).  So a wrapper that
// allocates cannot re-enter malloc from inside malloc, and no process pays a
// lazy binding per wrapper.  This executable defines the wrappers itself,
// which puts them first in every symbol lookup, the library's included.
// The same holds for open: the double-free report reads /proc/self/maps on
// its way to abort, and a wrapper there (fakeroot's allocates) must not run.
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

#include "test_support.h"

namespace {
std::atomic<int> g_calls{0};
// Set inside the death test's child: from then on a call of the open
// wrapper ends the child with this status instead of the abort expected.
std::atomic<bool> g_trap_open{false};
constexpr int kOpenCalled = 42;
}

extern "C" {
void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
    g_calls.fetch_add(1);
    return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
int munmap(void* addr, size_t len) {
    g_calls.fetch_add(1);
    return int(syscall(SYS_munmap, addr, len));
}
int mprotect(void* addr, size_t len, int prot) {
    g_calls.fetch_add(1);
    return int(syscall(SYS_mprotect, addr, len, prot));
}
int madvise(void* addr, size_t len, int advice) {
    g_calls.fetch_add(1);
    return int(syscall(SYS_madvise, addr, len, advice));
}
void* mremap(void* old, size_t old_len, size_t new_len, int flags, ...) {
    g_calls.fetch_add(1);
    void* fixed = nullptr;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        fixed = va_arg(ap, void*);
        va_end(ap);
    }
    return reinterpret_cast<void*>(syscall(SYS_mremap, old, old_len, new_len, flags, fixed));
}
int open(const char* path, int flags, ...) {
    if (g_trap_open.load()) _exit(kOpenCalled);
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = mode_t(va_arg(ap, int));
        va_end(ap);
    }
    return int(syscall(SYS_openat, AT_FDCWD, path, flags, mode));
}
}

namespace {

TEST(Interposition, TheLibraryMakesItsOwnSystemCalls) {
#if !defined(__x86_64__) && !defined(__aarch64__)
    GTEST_SKIP() << "SKIPPED: this architecture calls glibc's wrappers (src/os/syscall.h)";
#endif
    // Everything since the process started, the library's initialisation
    // (reservation, tables, first chunk) included.
    EXPECT_EQ(g_calls.load(), 0);
    // Large blocks (a mapping each, mremap to grow), new chunks (mprotect),
    // and releases (madvise).
    char* big = static_cast<char*>(malloc(btm_test::opaque(size_t{48} << 20)));
    ASSERT_NE(big, nullptr);
    memset(big, 1, size_t{48} << 20);
    big = static_cast<char*>(realloc(big, size_t{96} << 20));
    ASSERT_NE(big, nullptr);
    EXPECT_EQ(big[(size_t{48} << 20) - 1], 1);
    free(big);
    std::vector<void*> blocks;
    for (int i = 0; i < 40000; ++i) {
        void* p = malloc(btm_test::opaque(size_t{1000}));
        ASSERT_NE(p, nullptr);
        memset(p, 2, 1000);
        blocks.push_back(p);
    }
    for (void* p : blocks) free(p);
    malloc_trim(0);
    EXPECT_EQ(g_calls.load(), 0) << "btmalloc called an interposable mmap-family function";
    // The wrappers do see a call made through them: the count can move.
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    munmap(p, 4096);
    EXPECT_EQ(g_calls.load(), 2);
}

TEST(Interposition, TheDoubleFreeReportCallsNoWrapper) {
#if !defined(__x86_64__) && !defined(__aarch64__)
    GTEST_SKIP() << "SKIPPED: this architecture calls glibc's wrappers (src/os/syscall.h)";
#endif
    if (!btm_test::kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    auto body = [] {
        btm_test::no_core_dump();
        char* p = static_cast<char*>(malloc(btm_test::opaque(size_t{48})));
        memset(p, 1, 48);
        free(p);
        g_trap_open.store(true);
        free(btm_test::opaque(p));
    };
    // The report still names the module: it read the maps without the wrapper.
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT), "double free .* called from interpose_test\\+0x");
}

}  // namespace
