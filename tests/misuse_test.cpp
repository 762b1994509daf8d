// Misuse of the allocator by the program (RELIABILITY.md rows 2 and 17, and
// the hardening of issue 2):
//  - a double free aborts with one line naming the block, its size class, the
//    free() call site and the allocation call site as module+0xoffset;
//  - pointers btmalloc never handed out (raw mmap, stack, static data, pages
//    that would fault if touched, blocks of glibc's own allocator) are
//    ignored and counted as foreign frees;
//  - interior pointers into the heap are ignored, counted as invalid frees,
//    and do not damage the heap.
// Each case runs in a child process, so a crash fails one test, not the binary.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "btmalloc.h"
#include "test_support.h"

extern char** environ;

namespace {

using btm_test::escape;
using btm_test::kHardening;
using btm_test::no_core_dump;
using btm_test::opaque;
using btm_test::read_stats;

// The allocation and the frees happen in these functions, so the report's
// call sites can be checked against their addresses.  noipa: not inlined,
// not merged; the escape after each call keeps it from being a tail call.
__attribute__((noipa)) void* allocate_victim(size_t n) {
    void* p = malloc(n);
    escape(p);
    return p;
}

__attribute__((noipa)) void free_once(void* p) {
    free(p);
    escape(p);
}

__attribute__((noipa)) void free_twice(void* p) {
    free(p);
    escape(p);
    free(p);
    escape(p);
}

// The report format: btmalloc: double free of 0x... (size class N) in free()
// called from MODULE+0xOFF; allocated from call site MODULE+0xOFF.  A block
// of the start-up phase (misuse_test_in_phase) says "(a start-up block of N
// bytes)" instead.
const char kReport[] =
    "btmalloc: double free of 0x[0-9a-f]+ \\((size class [0-9]+|a start-up block of [0-9]+ bytes)\\) "
    "in free\\(\\) called from misuse_test\\+0x[0-9a-f]+; allocated from call site [^ ]+\\+0x[0-9a-f]+";

void double_free_of_size(size_t n) {
    no_core_dump();
    void* p = allocate_victim(n);
    memset(p, 0x33, n);
    free_twice(p);
}

// Set in the environment of a re-executed copy of this binary: the copy does
// the double free before main, with whatever BTM_* knobs the test chose.
constexpr char kChildModeVariable[] = "BTM_TEST_MISUSE_CHILD";

__attribute__((constructor)) void run_child_mode() {
    const char* mode = getenv(kChildModeVariable);
    if (mode != nullptr && strcmp(mode, "double-free") == 0) {
        double_free_of_size(80);
        _exit(3);  // not reached when the double free is detected
    }
}

TEST(DoubleFree, AbortsWithAReportNamingTheCallSites) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    EXPECT_EXIT(double_free_of_size(64), ::testing::KilledBySignal(SIGABRT), kReport);
}

TEST(DoubleFree, DetectedInEverySmallSizeClass) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    for (size_t n : {size_t{1}, size_t{16}, size_t{24}, size_t{100}, size_t{512}, size_t{3000}, size_t{16384},
                     size_t{60000}}) {
        EXPECT_EXIT(double_free_of_size(n), ::testing::KilledBySignal(SIGABRT), kReport) << "size " << n;
    }
}

TEST(DoubleFree, DetectedAfterOtherAllocationsInBetween) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    auto body = [] {
        no_core_dump();
        void* p = allocate_victim(200);
        free_once(p);
        std::vector<void*> others;
        for (size_t i = 0; i < 300; ++i) others.push_back(malloc(opaque(i % 7 == 0 ? 5000 : 40)));
        for (void* q : others) free(q);
        free_once(p);
    };
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT), "double free");
}

TEST(DoubleFree, DetectedWhenTheFirstFreeWasInAnotherThread) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    auto body = [] {
        no_core_dump();
        void* p = allocate_victim(96);
        std::thread([p] { free_once(p); }).join();
        free_once(p);
    };
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT), "double free");
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuse-after-free"
TEST(DoubleFree, DetectedThroughOperatorDelete) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    auto body = [] {
        no_core_dump();
        void* p = ::operator new(opaque(size_t{48}));
        ::operator delete(p);
        escape(p);
        ::operator delete(p);
    };
    EXPECT_EXIT(body(), ::testing::KilledBySignal(SIGABRT), "double free");
}
#pragma GCC diagnostic pop

// Runs fn in a child with stderr captured; returns the wait status.
template <class Fn>
int run_capturing_stderr(Fn fn, std::string* err) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        no_core_dump();
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) err->append(buf, static_cast<size_t>(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

// Offset of a function in its module, as module+0xoffset reports give it.
uintptr_t module_offset(void* fn, std::string* module) {
    Dl_info info{};
    if (dladdr(fn, &info) == 0) return 0;
    const char* slash = strrchr(info.dli_fname, '/');
    *module = slash != nullptr ? slash + 1 : info.dli_fname;
    return reinterpret_cast<uintptr_t>(fn) - reinterpret_cast<uintptr_t>(info.dli_fbase);
}

// Checks that the report on stderr names free_twice as the free() call site
// and allocate_victim as the allocation call site.  In hash mode several
// call sites can share the block's partition; then the report may only name
// the likely site, and must say so -- unless `exact` is demanded.
void expect_report_names_victim_functions(int status, const std::string& err, bool exact = true) {
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) << "status " << status << ", stderr:\n" << err;
    std::smatch m;
    std::regex re("called from ([^ ]+)\\+0x([0-9a-f]+); allocated from call site ([^ ]+)\\+0x([0-9a-f]+)");
    ASSERT_TRUE(std::regex_search(err, m, re)) << err;
    std::string module;
    uintptr_t alloc_fn = module_offset(reinterpret_cast<void*>(&allocate_victim), &module);
    uintptr_t free_fn = module_offset(reinterpret_cast<void*>(&free_twice), &module);
    ASSERT_NE(alloc_fn, 0u);
    uintptr_t free_site = std::stoull(m[2].str(), nullptr, 16);
    uintptr_t alloc_site = std::stoull(m[4].str(), nullptr, 16);
    // A return address lies just after a call instruction inside the caller;
    // these functions are a few dozen bytes long.
    EXPECT_EQ(m[1].str(), module);
    EXPECT_EQ(m[3].str(), module);
    EXPECT_GT(free_site, free_fn) << err;
    EXPECT_LT(free_site, free_fn + 128) << "the free call site is not inside free_twice: " << err;
    bool hedged = err.find("(likely: call sites share partition") != std::string::npos;
    if (!exact && hedged) return;  // a site in the module, honestly marked as likely
    EXPECT_FALSE(hedged) << "an exact report was expected: " << err;
    EXPECT_GT(alloc_site, alloc_fn) << err;
    EXPECT_LT(alloc_site, alloc_fn + 128) << "the allocation call site is not inside allocate_victim "
                                          << "(at " << module << "+0x" << std::hex << alloc_fn << "): " << err;
}

// Distinct call sites, as a real program has thousands of.
template <int I>
__attribute__((noipa)) void* other_site(size_t n) {
    void* p = malloc(n);
    escape(p);
    return p;
}
template <int... I>
void use_many_call_sites(std::integer_sequence<int, I...>) {
    void* blocks[] = {other_site<I>(80)...};
    for (void* p : blocks) free(p);
}

// A program that has run for a while has used many call sites before the
// block is allocated; with 64 partitions some share the block's, so the
// report names its site exactly or says the site it names is only likely.
TEST(DoubleFree, ReportedCallSitesAreTheAllocatingAndFreeingFunctions) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    std::string err;
    int status = run_capturing_stderr(
        [] {
            use_many_call_sites(std::make_integer_sequence<int, 300>{});
            double_free_of_size(80);
        },
        &err);
    expect_report_names_victim_functions(status, err, /*exact=*/false);
}

// The same report from a fresh process in BTM_PARTITION_MODE=intern, where
// every call site has a partition of its own.
TEST(DoubleFree, ReportedCallSitesInInternMode) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    std::vector<std::string> env_strings = {std::string(kChildModeVariable) + "=double-free",
                                            "BTM_PARTITION_MODE=intern"};
    for (char** e = environ; *e != nullptr; ++e)
        if (strncmp(*e, "BTM_PARTITION_MODE=", 19) != 0) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    char self[] = "/proc/self/exe";
    char* argv[] = {self, nullptr};
    std::string err;
    int status = run_capturing_stderr(
        [&] {
            execve(self, argv, envp.data());
            _exit(127);
        },
        &err);
    expect_report_names_victim_functions(status, err);
}

// ---------------------------------------------------------------- foreign and invalid pointers

// The body runs in a child; it prints each failed check on stderr and exits
// with the number of failures, so a crash or a failure shows its details.
#define CHILD_CHECK(cond)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
            ++failures;                                                                     \
        }                                                                                   \
    } while (0)

int g_static_array[64];

int foreign_pointers_body() {
    int failures = 0;
    const size_t page = btm_test::page_size();
    int on_stack[16] = {};
    void* mapped = mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* no_access = mmap(nullptr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHILD_CHECK(mapped != MAP_FAILED && no_access != MAP_FAILED);
    memset(mapped, 0x7e, 4 * page);
    struct btm_stats before = read_stats();
    free(mapped);
    free(static_cast<char*>(mapped) + 2 * page + 48);
    free(opaque(&on_stack[3]));
    free(opaque(&g_static_array[17]));
    free(no_access);  // faults if the allocator reads anything at the pointer
    struct btm_stats after = read_stats();
    CHILD_CHECK(after.foreign_frees == before.foreign_frees + 5);
    CHILD_CHECK(after.invalid_frees == before.invalid_frees);
    CHILD_CHECK(static_cast<unsigned char*>(mapped)[0] == 0x7e);
    CHILD_CHECK(btm_test::first_nonzero(on_stack, sizeof on_stack) == sizeof on_stack);
    CHILD_CHECK(malloc_usable_size(no_access) == 0);
    CHILD_CHECK(malloc_usable_size(opaque(&on_stack[0])) == 0);
    munmap(mapped, 4 * page);
    munmap(no_access, page);
    return failures;
}

TEST(ForeignFree, MmapStackAndStaticPointersAreIgnoredAndCounted) {
    EXPECT_EXIT(_exit(foreign_pointers_body()), ::testing::ExitedWithCode(0), "");
}

// Blocks of glibc's own allocator, as a program holds when it got them
// before btmalloc was in place or from a library bound to glibc's malloc
// (RTLD_DEEPBIND, row 17): free ignores and counts them, realloc refuses
// them (their size is unknown), malloc_usable_size says 0, and glibc can
// still free them afterwards, so nothing of theirs was written.
int glibc_blocks_body() {
    int failures = 0;
    void* libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    CHILD_CHECK(libc != nullptr);
    if (!libc) return failures;
    using Malloc = void* (*)(size_t);
    using Calloc = void* (*)(size_t, size_t);
    using Memalign = void* (*)(size_t, size_t);
    using Free = void (*)(void*);
    auto glibc_malloc = reinterpret_cast<Malloc>(dlsym(libc, "malloc"));
    auto glibc_calloc = reinterpret_cast<Calloc>(dlsym(libc, "calloc"));
    auto glibc_memalign = reinterpret_cast<Memalign>(dlsym(libc, "memalign"));
    auto glibc_free = reinterpret_cast<Free>(dlsym(libc, "free"));
    CHILD_CHECK(glibc_malloc && glibc_calloc && glibc_memalign && glibc_free);
    if (!glibc_malloc || !glibc_calloc || !glibc_memalign || !glibc_free) return failures;
    // Really glibc's: ours would show up in the statistics.
    CHILD_CHECK(reinterpret_cast<void*>(glibc_malloc) != reinterpret_cast<void*>(&malloc));
    struct Block {
        void* p;
        size_t n;
    };
    // Small, medium, mmap-sized (glibc maps 300 KiB itself), zeroed, aligned.
    std::vector<Block> blocks;
    for (size_t n : {size_t{24}, size_t{1000}, size_t{5000}, size_t{300000}}) blocks.push_back({glibc_malloc(n), n});
    blocks.push_back({glibc_calloc(10, 10), 100});
    blocks.push_back({glibc_memalign(64, 100), 100});
    for (size_t i = 0; i < blocks.size(); ++i) {
        CHILD_CHECK(blocks[i].p != nullptr);
        if (blocks[i].p) memset(blocks[i].p, int(0x30 + i), blocks[i].n);
    }
    struct btm_stats before = read_stats();
    for (const Block& b : blocks) {
        CHILD_CHECK(malloc_usable_size(b.p) == 0);
        errno = 0;
        CHILD_CHECK(realloc(b.p, 10) == nullptr && errno == ENOMEM);
        free(b.p);
    }
    struct btm_stats after = read_stats();
    CHILD_CHECK(after.foreign_frees == before.foreign_frees + blocks.size());
    CHILD_CHECK(after.invalid_frees == before.invalid_frees);
    for (size_t i = 0; i < blocks.size(); ++i) {
        auto* bytes = static_cast<unsigned char*>(blocks[i].p);
        bool intact = true;
        for (size_t k = 0; k < blocks[i].n; ++k) intact = intact && bytes[k] == 0x30 + i;
        CHILD_CHECK(intact);
        glibc_free(blocks[i].p);  // glibc aborts here if its chunk headers were touched
    }
    dlclose(libc);
    return failures;
}

TEST(ForeignFree, BlocksOfGlibcsOwnAllocator) {
    EXPECT_EXIT(_exit(glibc_blocks_body()), ::testing::ExitedWithCode(0), "");
}

// A library loaded with RTLD_DEEPBIND looks its own symbols up in its own
// dependencies first, so its direct calls of malloc and free reach the C
// library's allocator while the program's reach btmalloc (RELIABILITY.md row
// 17).  What the program frees of such blocks is a foreign free: ignored,
// counted, never a crash; the library's own pairs keep working.  The C
// library's internal calls (strdup's malloc) still reach btmalloc.  (The
// library freeing a block of btmalloc's is the C library's free on a block
// it never made: btmalloc.7 documents that limit.)
int deepbind_body() {
    int failures = 0;
    void* lib = dlopen(BTM_DEEPBIND_HELPER, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    CHILD_CHECK(lib != nullptr);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return failures;
    }
    auto lib_malloc = reinterpret_cast<void* (*)(size_t)>(dlsym(lib, "deepbind_malloc"));
    auto lib_strdup = reinterpret_cast<char* (*)(const char*)>(dlsym(lib, "deepbind_strdup"));
    auto lib_free = reinterpret_cast<void (*)(void*)>(dlsym(lib, "deepbind_free"));
    CHILD_CHECK(lib_malloc && lib_strdup && lib_free);
    if (!lib_malloc || !lib_strdup || !lib_free) return failures;
    struct btm_stats before = read_stats();
    void* theirs = lib_malloc(200);
    void* kept = lib_malloc(5000);
    char* text = lib_strdup("copied by the C library's strdup");
    CHILD_CHECK(theirs != nullptr && kept != nullptr && text != nullptr);
    // The library's malloc is the C library's: btmalloc does not know the block.
    CHILD_CHECK(malloc_usable_size(theirs) == 0 && malloc_usable_size(kept) == 0);
    // strdup's own malloc call is interposed as usual.
    CHILD_CHECK(malloc_usable_size(text) > strlen(text));
    memset(theirs, 0x5a, 200);
    memset(kept, 0x3c, 5000);
    free(text);
    free(theirs);   // the program frees a block of the library: foreign
    lib_free(kept); // the library's own pair
    for (int i = 0; i < 1000; ++i) lib_free(lib_malloc(size_t(16 + i % 300)));
    struct btm_stats after = read_stats();
    CHILD_CHECK(after.foreign_frees == before.foreign_frees + 1);
    CHILD_CHECK(after.invalid_frees == before.invalid_frees);
    dlclose(lib);
    return failures;
}

TEST(ForeignFree, BlocksOfALibraryLoadedWithDeepbind) {
    EXPECT_EXIT(_exit(deepbind_body()), ::testing::ExitedWithCode(0), "");
}

// A mapping whose 2 MiB-aligned base is unmapped: an allocator that looks for
// a chunk header at (p & ~(2 MiB - 1)) would fault.
int unmapped_chunk_base_body() {
    int failures = 0;
    const size_t kChunk = size_t{2} << 20;
    const size_t page = btm_test::page_size();
    auto* region = static_cast<char*>(mmap(nullptr, 3 * kChunk, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    CHILD_CHECK(region != MAP_FAILED);
    char* base = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(region) + kChunk - 1) & ~(kChunk - 1));
    munmap(base, kChunk / 2);
    char* p = base + kChunk / 2 + 4 * page;
    CHILD_CHECK(mprotect(p, page, PROT_READ | PROT_WRITE) == 0);
    struct btm_stats before = read_stats();
    free(p);
    free(p + 64);
    struct btm_stats after = read_stats();
    CHILD_CHECK(after.foreign_frees == before.foreign_frees + 2);
    return failures;
}

TEST(ForeignFree, PointerWhoseChunkBaseIsUnmapped) {
    EXPECT_EXIT(_exit(unmapped_chunk_base_body()), ::testing::ExitedWithCode(0), "");
}

// Same call site for the victim and the blocks allocated after the bad
// frees, so they come from the same partition and size class.
__attribute__((noipa)) void* allocate_same_site(size_t n) {
    void* p = malloc(n);
    escape(p);
    return p;
}

int interior_pointer_body(size_t n) {
    int failures = 0;
    auto* victim = static_cast<unsigned char*>(allocate_same_site(n));
    const size_t usable = malloc_usable_size(victim);
    btm_test::fill_pattern(victim, usable, 42);
    struct btm_stats before = read_stats();
    // Each points inside the victim, never at another slot's start.
    free(victim + 8);
    free(victim + 1);
    free(victim + usable - 8);
    struct btm_stats after = read_stats();
    CHILD_CHECK(after.invalid_frees == before.invalid_frees + 3);
    CHILD_CHECK(after.foreign_frees == before.foreign_frees);
    CHILD_CHECK(malloc_usable_size(victim) == usable);
    // Had any bad free released the victim's slot, these would be handed it.
    std::vector<unsigned char*> blocks;
    for (int i = 0; i < 20000; ++i) {
        auto* q = static_cast<unsigned char*>(allocate_same_site(n));
        CHILD_CHECK(q != nullptr);
        CHILD_CHECK(q + n <= victim || q >= victim + usable);
        btm_test::fill_pattern(q, n, static_cast<uint64_t>(i));
        blocks.push_back(q);
    }
    CHILD_CHECK(btm_test::check_pattern(victim, usable, 42) == usable);
    for (size_t i = 0; i < blocks.size(); ++i) {
        CHILD_CHECK(btm_test::check_pattern(blocks[i], n, i) == n);
        free(blocks[i]);
    }
    free(victim);
    if (failures > 20) failures = 20;
    return failures;
}

TEST(InvalidFree, InteriorPointersAreIgnoredCountedAndHarmless) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: interior pointers are not detected";
    for (size_t n : {size_t{32}, size_t{64}, size_t{640}, size_t{8000}}) {
        EXPECT_EXIT(_exit(interior_pointer_body(n)), ::testing::ExitedWithCode(0), "") << "size " << n;
    }
}

int large_interior_body() {
    int failures = 0;
    const size_t n = size_t{4} << 20;
    auto* big = static_cast<unsigned char*>(malloc(n));
    CHILD_CHECK(big != nullptr);
    size_t usable = malloc_usable_size(big);
    btm_test::fill_pattern(big, n, 9);
    struct btm_stats before = read_stats();
    free(big + btm_test::page_size());
    free(big + n / 2 + 8);
    struct btm_stats after = read_stats();
    CHILD_CHECK(after.invalid_frees + after.foreign_frees == before.invalid_frees + before.foreign_frees + 2);
    CHILD_CHECK(malloc_usable_size(big) == usable);
    std::vector<void*> more;
    for (int i = 0; i < 8; ++i) {
        void* q = malloc(n);
        CHILD_CHECK(static_cast<unsigned char*>(q) + n <= big || static_cast<unsigned char*>(q) >= big + usable);
        more.push_back(q);
    }
    CHILD_CHECK(btm_test::check_pattern(big, n, 9) == n);
    for (void* q : more) free(q);
    free(big);
    return failures;
}

TEST(InvalidFree, InteriorPointersOfALargeBlockAreIgnored) {
    EXPECT_EXIT(_exit(large_interior_body()), ::testing::ExitedWithCode(0), "");
}

}  // namespace
