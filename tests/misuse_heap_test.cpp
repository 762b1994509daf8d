// Heap metadata a program's bug can reach, and what btmalloc promises about
// it (issue 18, RELIABILITY.md row 24; btmalloc(7), HARDENING):
//  - a free slot's link word, flipped by one bit or by a one-byte overflow
//    of the block before it: the malloc that would hand out a slot that is
//    not marked free aborts with a report naming its call site;
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

// Two free slots x and x + 64 of the 64-byte class, x 128-aligned, so that
// flipping bit 6 of x's decoded link turns x + 64 into x itself.
struct Pair {
    char* x;
    std::vector<void*> others;
};
Pair adjacent_pair() {
    Pair pair{nullptr, {}};
    std::vector<char*> blocks;
    for (int i = 0; i < 64; ++i) blocks.push_back(static_cast<char*>(allocate_here(64)));
    for (char* a : blocks)
        for (char* b : blocks)
            if (!pair.x && reinterpret_cast<uintptr_t>(a) % 128 == 0 && b == a + 64) pair.x = a;
    for (char* a : blocks)
        if (!pair.x || (a != pair.x && a != pair.x + 64)) pair.others.push_back(a);
    return pair;
}

// Frees a then b and takes two blocks back: true if they came back as b, a,
// so the frees and mallocs took their hit paths (a free into a full bin
// sends its newest slots home, a fresh slab's slots are carved into a full
// bin).  The bin is then as it was, so freeing a and b again leaves b
// linked to a.
bool frees_stay_in_bin(void* a, void* b) {
    free_here(a);
    free_here(b);
    void* first = allocate_here(64);
    void* second = allocate_here(64);
    return first == b && second == a;
}

// A pair whose next frees stay in the bin; `z` (if asked for) is a live
// block of the site whose neighbour z ^ 64 is live too, freed before the
// pair's second block.
Pair pair_for_frees(char** z) {
    for (int attempt = 0; attempt < 16; ++attempt) {
        Pair pair = adjacent_pair();
        if (!pair.x) continue;
        if (!z) {
            if (frees_stay_in_bin(pair.x + 64, pair.x)) return pair;
            continue;
        }
        *z = nullptr;
        for (void* o : pair.others) {
            auto partner = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(o) ^ 64);
            for (void* q : pair.others)
                if (!*z && q == partner) *z = static_cast<char*>(o);
        }
        if (*z && frees_stay_in_bin(*z, pair.x + 64)) return pair;
    }
    _exit(4);
}

// `free(p2); free(p); p[0] ^= 0x40` with p2 = p + 64: the next mallocs of the
// site handed out p again and again.
void link_bit_flip() {
    no_core_dump();
    Pair pair = pair_for_frees(nullptr);
    free_here(pair.x + 64);
    free_here(pair.x);
    pair.x[0] ^= 0x40;
    void* seen[3];
    for (void*& p : seen) p = allocate_here(64);
    _exit(seen[0] == seen[1] || seen[1] == seen[2] ? 5 : 6);
}

// A one-byte overflow of a live block into the link of the free slot after
// it, whose successor z is another free slot.  The byte written is the
// link's low byte with bit 6 changed, so the decoded link is z ^ 64: the
// slot beside z, which is live.  Unchecked, the second malloc hands out a
// block the program still uses.
void overflow_into_free_link() {
    no_core_dump();
    char* z = nullptr;
    Pair pair = pair_for_frees(&z);
    free_here(z);
    free_here(pair.x + 64);
    unsigned char old = static_cast<unsigned char>(pair.x[64]);
    pair.x[64] = static_cast<char>(old ^ 0x40);
    void* first = allocate_here(64);
    void* second = allocate_here(64);
    _exit(first == pair.x + 64 && second == reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(z) ^ 64) ? 5 : 6);
}

const char kUnmarked[] =
    "btmalloc: corrupted free list: the slot 0x[0-9a-f]+ \\(size class 64\\) that malloc\\(\\) called from "
    "misuse_heap_test\\+0x[0-9a-f]+ was to hand out is not marked free \\(a write after free or a buffer "
    "overflow\\)";

TEST(FreeListLink, OneBitFlipIsCaught) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: links are not checked";
    EXPECT_EXIT(link_bit_flip(), ::testing::KilledBySignal(SIGABRT), kUnmarked);
}

TEST(FreeListLink, OneByteOverflowIntoAFreedNeighbourIsCaught) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: links are not checked";
    EXPECT_EXIT(overflow_into_free_link(), ::testing::KilledBySignal(SIGABRT), kUnmarked);
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
// Exits 0 if the process survives and a free slot's link holds no secret
// (only the XOR with its own address, which the decoding needs anyway).
int hardening_off_body() {
    void* b = allocate_here(48);
    void* a = allocate_here(48);
    free_here(b);
    free_here(a);
    uintptr_t link = *static_cast<uintptr_t*>(a);
    void* c = allocate_here(48);
    free_here(c);
    free_here(c);
    uintptr_t expected = reinterpret_cast<uintptr_t>(b) ^ reinterpret_cast<uintptr_t>(a);
    if (link != expected) {
        fprintf(stderr, "link %#lx, expected %#lx (no secret)\n", static_cast<unsigned long>(link),
                static_cast<unsigned long>(expected));
        return 7;
    }
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
    if (strcmp(mode, "hardening-off-bit-flip") == 0) link_bit_flip();
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

// ---------------------------------------------------------------- hardening = off

TEST(HardeningOff, NoDoubleFreeCheckAndPlainLinks) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: the knob has nothing to turn off";
    std::string err;
    int status = run_child("hardening-off", {"BTM_HARDENING=0", "BTM_STARTUP_BYTES=0"}, &err);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << ", stderr:\n" << err;
}

// The free mark is not checked either: the corrupted link is followed, as
// by an allocator without hardening.
TEST(HardeningOff, CorruptedLinkIsNotChecked) {
    if constexpr (!kHardening) GTEST_SKIP() << "built with BTM_HARDENING=OFF: the knob has nothing to turn off";
    std::string err;
    int status = run_child("hardening-off-bit-flip", {"BTM_HARDENING=0", "BTM_STARTUP_BYTES=0"}, &err);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 5) << "status " << status << ", stderr:\n" << err;
}

}  // namespace
