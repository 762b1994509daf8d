// Heap metadata a program's bug can reach, and what btmalloc promises about
// it (issue 18, RELIABILITY.md row 24; btmalloc(7), HARDENING):
//  - a write after free into a slot in a thread's bin: harmless (the bin is
//    an array outside the slots), malloc hands out the freed slots as before;
//  - a slab free list's link word (a slot its thread sent home), flipped
//    by one bit: the refill of the malloc that walks it aborts with a
//    report naming that malloc's call site;
//  - a start-up block's header, changed by a one-byte overflow: free,
//    realloc and malloc_usable_size abort with a report;
//  - a large block freed twice (one kept in the large-block cache, one
//    unmapped at once): reported and stopped like a small one;
//  - free of a pointer into the reserved but unused part of the heap: no
//    fault, counted;
//  - `hardening = off`: exactly the checks btmalloc.conf(5) lists are off.
// Each case runs in a child process: a death test, or a re-executed copy of
// this binary for the cases that need a fresh process or other knobs.
#include <errno.h>
#include <malloc.h>
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
#include <vector>

#include <gtest/gtest.h>

#include "btmalloc.h"
#include "test_support.h"

extern char** environ;

namespace {

using btm_test::escape;
using btm_test::kHardening;
using btm_test::no_core_dump;
using btm_test::read_stats;

// One call site for every block of a case, so they share a bin.
__attribute__((noipa)) void* allocate_here(size_t n) {
    void* p = malloc(n);
    escape(p);
    return p;
}

__attribute__((noipa)) void free_here(void* p) {
    free(p);
    escape(p);
}

// Frees a then b and takes two blocks back: true if they came back as b, a,
// so the frees and mallocs took their hit paths (a free into a full bin
// sends its newest slots home).  The bin is then as it was.
bool frees_stay_in_bin(void* a, void* b) {
    free_here(a);
    free_here(b);
    void* first = allocate_here(64);
    void* second = allocate_here(64);
    return first == b && second == a;
}

// `free(y); free(x)`, then x's first two words overwritten (where a slot in
// a bin had its free-list link before bins became stacks, and its free
// mark): the next two mallocs of the site still hand out x and y, nothing
// else (exits 5).  A bin is an array in the thread's cache: what a program writes into a
// freed slot cannot redirect malloc.
void write_after_free_in_bin() {
    no_core_dump();
    for (int attempt = 0; attempt < 16; ++attempt) {
        auto* x = static_cast<char*>(allocate_here(64));
        auto* y = static_cast<char*>(allocate_here(64));
        if (!frees_stay_in_bin(y, x)) continue;
        free_here(y);
        free_here(x);
        auto* w = reinterpret_cast<uintptr_t*>(x);
        w[0] ^= 0x40;
        w[1] = ~w[1];
        void* a = allocate_here(64);
        void* b = allocate_here(64);
        _exit(a == x && b == y ? 5 : 6);
    }
    _exit(4);
}

// A class no other case of this binary uses, so the main thread's bin of it
// is empty and its first malloc refills from the slab below.
constexpr size_t kListSize = 224;

// Blocks freed by a thread that then exits go home to their slab's free
// list, linked through their first words; a write after free flips bit 6 of
// each link (as a one-byte overflow of the block before could).  The next
// malloc's refill walks the list: with the checks on it stops at the first
// changed link with a report; without, it follows it (exits 5 when malloc
// hands out the address a changed link names, inside a slot).
void write_after_free_in_slab_list() {
    no_core_dump();
    std::vector<void*> freed;
    freed.reserve(8);
    void* keep = nullptr;
    std::thread([&] {
        keep = allocate_here(kListSize);  // the slab stays (not empty) after the frees
        for (int i = 0; i < 8; ++i) freed.push_back(allocate_here(kListSize));
        for (void* p : freed) free_here(p);
    }).join();
    escape(keep);
    for (void* p : freed) *static_cast<uintptr_t*>(p) ^= 0x40;
    void* got[8];
    for (void*& p : got) p = allocate_here(kListSize);
    for (void* p : got)
        for (void* q : freed)
            if (p == reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(q) ^ 0x40)) _exit(5);
    _exit(6);
}

const char kCorruptList[] =
    "btmalloc: corrupted free list: the free slot 0x[0-9a-f]+ \\(size class 224\\) links to 0x[0-9a-f]+, not a "
    "free slot of its slab, found by malloc\\(\\) called from misuse_heap_test\\+0x[0-9a-f]+ \\(a write after "
    "free or a buffer overflow\\)";

TEST(FreeSlotWrite, InABinCannotRedirectMalloc) {
    EXPECT_EXIT(write_after_free_in_bin(), ::testing::ExitedWithCode(5), "");
}

// ---------------------------------------------------------------- re-executed children

// Set in the environment of a re-executed copy of this binary: the copy runs
// the named case before main, inside the start-up phase (BTM_STARTUP_BYTES).
constexpr char kModeVariable[] = "BTM_TEST_HEAP_CHILD";

// Two consecutive start-up blocks of 64 bytes; a one-byte overflow of the
// first sets the second's size from 64 to 240 (0xf0).
char* overflowed_startup_block() {
    auto* a = static_cast<char*>(allocate_here(64));
    auto* b = static_cast<char*>(allocate_here(64));
    if (b != a + 80 || malloc_usable_size(b) != 64) {
        fprintf(stderr, "not two consecutive start-up blocks: %p %p\n", static_cast<void*>(a), static_cast<void*>(b));
        _exit(4);
    }
    memset(b, 0x5b, 64);
    a[64] = static_cast<char>(0xf0);
    return b;
}

// Frees the same block twice with hardening = off: nothing is reported.
int hardening_off_body() {
    void* c = allocate_here(48);
    free_here(c);
    free_here(c);
    return 0;
}

__attribute__((constructor)) void run_child_mode() {
    const char* mode = getenv(kModeVariable);
    if (mode == nullptr) return;
    no_core_dump();
    if (strcmp(mode, "startup-usable") == 0) {
        size_t n = malloc_usable_size(overflowed_startup_block());
        fprintf(stderr, "malloc_usable_size said %zu\n", n);
        _exit(3);
    }
    if (strcmp(mode, "startup-realloc") == 0) {
        void* q = realloc(overflowed_startup_block(), 4096);
        fprintf(stderr, "realloc returned %p\n", q);
        _exit(3);
    }
    if (strcmp(mode, "startup-free") == 0) {
        free_here(overflowed_startup_block());
        _exit(3);
    }
    if (strcmp(mode, "hardening-off") == 0) _exit(hardening_off_body());
    if (strcmp(mode, "list-flip") == 0) write_after_free_in_slab_list();
    _exit(2);
}

// Runs this binary again with the case `mode` and the extra variables;
// returns the wait status and the child's stderr.
int run_child(const char* mode, std::vector<std::string> extra, std::string* err) {
    extra.push_back(std::string(kModeVariable) + "=" + mode);
    for (char** e = environ; *e != nullptr; ++e)
        if (strncmp(*e, "BTM_", 4) != 0) extra.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& s : extra) envp.push_back(s.data());
    envp.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        char self[] = "/proc/self/exe";
        char* argv[] = {self, nullptr};
        execve(self, argv, envp.data());
        _exit(127);
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

bool killed_by_abort(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT; }

// The report for a start-up block whose header no longer matches.
std::string corrupted_header_report(const char* function) {
    return std::string("btmalloc: corrupted header of the start-up block 0x[0-9a-f]+ \\(size word 0x[0-9a-f]+\\) "
                       "in ") +
           function +
           " called from misuse_heap_test\\+0x[0-9a-f]+ \\(a buffer overflow of the block before it\\)";
}

void expect_startup_report(const char* mode, const char* function) {
    std::string err;
    int status = run_child(mode, {"BTM_STARTUP_BYTES=512k"}, &err);
    EXPECT_TRUE(killed_by_abort(status)) << "status " << status << ", stderr:\n" << err;
    EXPECT_TRUE(std::regex_search(err, std::regex(corrupted_header_report(function)))) << err;
}

TEST(StartupHeader, OneByteOverflowIsCaughtByMallocUsableSize) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: headers are not checked";
    expect_startup_report("startup-usable", "malloc_usable_size\\(\\)");
}

TEST(StartupHeader, OneByteOverflowIsCaughtByRealloc) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: headers are not checked";
    expect_startup_report("startup-realloc", "realloc\\(\\)");
}

TEST(StartupHeader, OneByteOverflowIsCaughtByFree) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: headers are not checked";
    expect_startup_report("startup-free", "free\\(\\)");
}

// ---------------------------------------------------------------- large blocks

__attribute__((noipa)) void free_large_twice(size_t n) {
    no_core_dump();
    void* p = allocate_here(n);
    memset(p, 0x44, 4096);
    free_here(p);
    free_here(p);
}

std::string large_report(size_t n) {
    return "btmalloc: double free of 0x[0-9a-f]+ \\(a large block of " + std::to_string(n) +
           " bytes\\) in free\\(\\) called from misuse_heap_test\\+0x[0-9a-f]+";
}

// 2 MiB fits the large-block cache (4 MiB by default): the first free keeps it.
TEST(LargeDoubleFree, TwoMiBBlockKeptInTheCache) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    EXPECT_EXIT(free_large_twice(size_t{2} << 20), ::testing::KilledBySignal(SIGABRT), large_report(size_t{2} << 20));
}

// 8 MiB does not: the first free unmaps it.
TEST(LargeDoubleFree, EightMiBBlockUnmappedAtOnce) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: double frees are not detected";
    EXPECT_EXIT(free_large_twice(size_t{8} << 20), ::testing::KilledBySignal(SIGABRT), large_report(size_t{8} << 20));
}

// Reuse is not a double free: a block taken back from the cache, or mapped
// again at the same address, is freed once more legitimately; and a mapping
// of the program's own at a freed block's address is foreign, not ours.
int large_reuse_body() {
    int failures = 0;
    for (size_t n : {size_t{2} << 20, size_t{8} << 20}) {
        for (int round = 0; round < 4; ++round) {
            void* p = allocate_here(n);
            memset(p, round, 4096);
            free_here(p);
        }
    }
    const size_t n = size_t{8} << 20;
    void* p = allocate_here(n);
    free_here(p);
    void* mine = mmap(p, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mine == p) {
        struct btm_stats before = read_stats();
        free_here(mine);
        struct btm_stats after = read_stats();
        if (after.foreign_frees != before.foreign_frees + 1) ++failures;
        munmap(mine, n);
    } else if (mine != MAP_FAILED) {
        munmap(mine, n);
    }
    return failures;
}

TEST(LargeDoubleFree, ReuseOfAFreedBlockIsNotReported) {
    EXPECT_EXIT(_exit(large_reuse_body()), ::testing::ExitedWithCode(0), "");
}

// ---------------------------------------------------------------- the unused part of the reservation

// Every power of two from 2 MiB to 16 GiB past a live block, plus 8 so that
// no pointer can be a slot start should it land in a chunk in use.
int beyond_committed_body() {
    int failures = 0;
    auto* live = static_cast<char*>(allocate_here(64));
    struct btm_stats before = read_stats();
    int n = 0;
    for (int shift = 21; shift <= 34; ++shift, ++n) {
        char* p = live + (size_t{1} << shift) + 8;
        free(p);
        if (malloc_usable_size(p) != 0) ++failures;
    }
    struct btm_stats after = read_stats();
    if (after.foreign_frees + after.invalid_frees != before.foreign_frees + before.invalid_frees + uint64_t(n)) {
        fprintf(stderr, "foreign %llu -> %llu, invalid %llu -> %llu\n",
                static_cast<unsigned long long>(before.foreign_frees),
                static_cast<unsigned long long>(after.foreign_frees),
                static_cast<unsigned long long>(before.invalid_frees),
                static_cast<unsigned long long>(after.invalid_frees));
        ++failures;
    }
    free(live);
    return failures;
}

TEST(ForeignFree, PointersIntoTheUncommittedReservationDoNotFault) {
    EXPECT_EXIT(_exit(beyond_committed_body()), ::testing::ExitedWithCode(0), "");
}

// In a fresh process: the test binary's own allocations of the class
// would give the main thread other slabs to refill from.
TEST(FreeSlotWrite, InASlabFreeListIsCaughtByTheRefill) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: links are not checked";
    std::string err;
    int status = run_child("list-flip", {"BTM_STARTUP_BYTES=0"}, &err);
    EXPECT_TRUE(killed_by_abort(status)) << "status " << status << ", stderr:\n" << err;
    EXPECT_TRUE(std::regex_search(err, std::regex(kCorruptList))) << err;
}

// ---------------------------------------------------------------- hardening = off

TEST(HardeningOff, NoDoubleFreeCheck) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: the knob has nothing to turn off";
    std::string err;
    int status = run_child("hardening-off", {"BTM_HARDENING=0", "BTM_STARTUP_BYTES=0"}, &err);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << ", stderr:\n" << err;
}

// A slab's free-list links are not checked either: the changed link is
// followed, as by an allocator without hardening.
TEST(HardeningOff, CorruptedLinkIsNotChecked) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: the knob has nothing to turn off";
    std::string err;
    int status = run_child("list-flip", {"BTM_HARDENING=0", "BTM_STARTUP_BYTES=0"}, &err);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 5) << "status " << status << ", stderr:\n" << err;
}

}  // namespace
