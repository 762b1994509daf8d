// Memory return (issue 3): resident memory goes back after a large free, with
// the background thread (io_uring or madvise) and with the synchronous path;
// malloc_trim; the fallback when a seccomp filter refuses io_uring; fork while
// the background thread is busy; the shadow-map stress with pages released
// around live objects; the thread starts lazily.
//
// Every scenario runs in a fresh process, reclaim_child (a program linked
// against libbtmalloc), started here with a chosen environment: the mode
// knobs are read once at start-up, the background thread exists at most once
// per process, and a starting RSS is only meaningful before anything was
// allocated.  The child prints "key value" lines; the assertions are here.
// A failed test prints the child's whole output.
//
// Timeouts are generous (a loaded two-core VM): a child polls until the
// condition holds and stops at once, so a passing run does not wait them out.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "reclaim_probe.h"
#include "test_support.h"

#ifndef RECLAIM_CHILD
#error "RECLAIM_CHILD must name the reclaim_child program"
#endif
#ifndef BTM_TEST_URING_BUILT
#define BTM_TEST_URING_BUILT 0
#endif

extern char** environ;

namespace {

constexpr int64_t kMiB = int64_t(1) << 20;

struct Child {
    std::vector<std::string> args;
    int status = -1;
    bool timed_out = false;
    double seconds = 0;
    std::string out, err;
    std::map<std::string, int64_t> values;

    bool has(const std::string& key) const { return values.count(key) != 0; }
    // The value printed for key; a missing key is a test failure (and 0).
    int64_t operator[](const std::string& key) const {
        auto it = values.find(key);
        if (it == values.end()) {
            ADD_FAILURE() << "reclaim_child printed no \"" << key << "\"";
            return 0;
        }
        return it->second;
    }
    bool exited_ok() const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
    std::string describe() const {
        std::ostringstream s;
        s << "reclaim_child";
        for (const auto& a : args) s << ' ' << a;
        s << ": ";
        if (timed_out) s << "timed out and was killed";
        else if (WIFSIGNALED(status)) s << "killed by signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status)) << ")";
        else s << "exit status " << WEXITSTATUS(status);
        s << " after " << seconds << " s";
        return s.str();
    }
};

std::string read_file(const char* path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

int make_temp(std::string& path) {
    const char* dir = getenv("TMPDIR");
    path = std::string(dir && *dir ? dir : "/tmp") + "/reclaim_child.XXXXXX";
    int fd = mkstemp(path.data());
    return fd;
}

// Runs reclaim_child with `args` in the caller's environment minus every
// BTM_* knob (BTM_STRESS_SCALE excepted), LD_PRELOAD and the system config
// files (BTM_CONF=), plus `env`.  Kills it after timeout_s.
Child run_child(std::vector<std::string> args, std::vector<std::string> env, int timeout_s) {
    Child c;
    c.args = args;
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) {
        std::string v = *e;
        if (v.rfind("BTM_", 0) == 0 && v.rfind("BTM_STRESS_SCALE=", 0) != 0) continue;
        if (v.rfind("LD_PRELOAD=", 0) == 0) continue;
        envs.push_back(v);
    }
    envs.push_back("BTM_CONF=");
    for (auto& e : env) envs.push_back(e);
    std::vector<char*> envp, argv;
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string prog = RECLAIM_CHILD;
    argv.push_back(prog.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    std::string out_path, err_path;
    int out_fd = make_temp(out_path), err_fd = make_temp(err_path);
    if (out_fd < 0 || err_fd < 0) {
        ADD_FAILURE() << "mkstemp: " << strerror(errno);
        return c;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    pid_t pid = -1;
    uint64_t t0 = reclaim_test::mono_ns();
    int rc = posix_spawn(&pid, prog.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(out_fd);
    close(err_fd);
    if (rc != 0) {
        ADD_FAILURE() << "posix_spawn " << prog << ": " << strerror(rc);
        unlink(out_path.c_str());
        unlink(err_path.c_str());
        return c;
    }
    const uint64_t deadline = t0 + uint64_t(timeout_s) * 1000000000u;
    for (;;) {
        pid_t w = waitpid(pid, &c.status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) {
            ADD_FAILURE() << "waitpid: " << strerror(errno);
            break;
        }
        if (reclaim_test::mono_ns() > deadline) {
            c.timed_out = true;
            kill(pid, SIGKILL);
            waitpid(pid, &c.status, 0);
            break;
        }
        reclaim_test::sleep_ms(20);
    }
    c.seconds = double(reclaim_test::mono_ns() - t0) / 1e9;
    c.out = read_file(out_path.c_str());
    c.err = read_file(err_path.c_str());
    unlink(out_path.c_str());
    unlink(err_path.c_str());
    std::istringstream lines(c.out);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream ls(line);
        std::string key;
        long long v;
        if (ls >> key >> v) c.values[key] = v;
    }
    return c;
}

// Prints the child's output when the test failed, and a one-line summary in
// any case.
class Report {
   public:
    explicit Report(const Child& c) : c_(c) {}
    ~Report() {
        std::cout << "[ reclaim  ] " << c_.describe() << '\n';
        if (::testing::Test::HasFailure())
            std::cout << "----- reclaim_child stdout\n"
                      << c_.out << "----- reclaim_child stderr\n"
                      << c_.err << "-----" << std::endl;
    }

   private:
    const Child& c_;
};

std::string mib(int64_t bytes) {
    std::ostringstream s;
    s.precision(1);
    s << std::fixed << double(bytes) / double(kMiB) << " MiB";
    return s.str();
}

// Whether this kernel lets this process set up an io_uring (the child's
// seccomp filter aside): io_uring_setup(4, {}) succeeds.
bool kernel_allows_io_uring(std::string& why) {
    unsigned char params[120] = {};
    long fd = syscall(__NR_io_uring_setup, 4, params);
    if (fd < 0) {
        why = std::string("io_uring_setup fails here: ") + strerror(errno);
        return false;
    }
    close(int(fd));
    return true;
}

constexpr int kChildTimeout = 180;  // seconds: only a hung child gets there

// ---------------------------------------------------------------- RSS returns

// The common checks of the "rss" scenario: the set was really resident, was
// freed intact, and the resident size came back to within slack of the start
// with at most dirty_kib of free pages still backed.
void check_rss_returned(const Child& c, int64_t mb, int64_t slack_mib, int64_t dirty_kib) {
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    const int64_t rss0 = c["start.rss"];
    EXPECT_GE(c["peak.rss"], rss0 + mb * kMiB * 8 / 10)
        << "the set was not resident: the test measures nothing";
    EXPECT_GE(c["settle.settled_ms"], 0)
        << "within the timeout, RSS did not fall to start + " << slack_mib << " MiB with at most " << dirty_kib
        << " KiB dirty: RSS " << mib(c["start.rss"]) << " at the start, " << mib(c["peak.rss"]) << " at the peak, "
        << mib(c["freed.rss"]) << " right after the free, " << mib(c["settle.rss"]) << " at the end, with "
        << mib(c["settle.dirty_bytes"]) << " dirty and " << c["settle.slabs"] << " slabs";
    EXPECT_LE(c["settle.rss"], rss0 + slack_mib * kMiB);
    EXPECT_LE(c["settle.dirty_bytes"], dirty_kib * 1024);
    // Most of what was in slabs went back through the reclaim paths (the
    // large blocks go back with munmap and are not counted there).
    const int64_t released = c["settle.released_bytes_sync"] + c["settle.released_bytes_async"];
    EXPECT_GE(released, mb * kMiB / 2) << "released only " << mib(released) << " of a " << mb << " MiB set";
    EXPECT_LE(c["settle.allocated_bytes"], 16 * kMiB) << "allocated_bytes after everything was freed";
    // btm_stats' resident_bytes is the same statm figure, read a moment later.
    EXPECT_NEAR(double(c["settle.resident_bytes"]), double(c["settle.rss"]), double(4 * kMiB));
}

TEST(RssReturns, AsyncModeReleasesWhileTheProcessMakesNoAllocatorCalls) {
    const int64_t mb = 320, slack = 32, dirty_kib = 1024;
    Child c = run_child({"rss", "mb=" + std::to_string(mb), "phase=idle", "slack_mib=" + std::to_string(slack),
                         "dirty_kib=" + std::to_string(dirty_kib), "timeout_ms=10000"},
                        {"BTM_ASYNC=on"}, kChildTimeout);
    Report report(c);
    check_rss_returned(c, mb, slack, dirty_kib);
    if (::testing::Test::HasFatalFailure()) return;
    EXPECT_EQ(c["start.tasks"], 1);
    EXPECT_EQ(c["freed.reclaim_thread"], 1) << "no background thread after freeing " << mb << " MiB";
    EXPECT_EQ(c["settle.reclaim_thread"], 1);
    EXPECT_GE(c["settle.tasks"], 2);
    if (c["settle.reclaim_uring"] == 1) {
        EXPECT_GT(c["settle.released_bytes_async"], 0) << "io_uring in use but nothing released through it";
    } else {
        EXPECT_GT(c["settle.released_bytes_sync"], 0);
    }
    // After the free the process made no allocator call at all: whatever was
    // still dirty then went back by the background thread alone.
    if (c["freed.dirty_bytes"] > dirty_kib * 1024) {
        EXPECT_GT(c["settle.released_bytes_sync"] + c["settle.released_bytes_async"],
                  c["freed.released_bytes_sync"] + c["freed.released_bytes_async"]);
    }
    std::cout << "[ reclaim  ] async: start " << mib(c["start.rss"]) << ", peak " << mib(c["peak.rss"])
              << ", after free " << mib(c["freed.rss"]) << " (" << mib(c["freed.dirty_bytes"]) << " dirty), settled "
              << mib(c["settle.rss"]) << " after " << c["settle.settled_ms"] << " ms; uring "
              << c["settle.reclaim_uring"] << ", released async " << mib(c["settle.released_bytes_async"])
              << ", sync " << mib(c["settle.released_bytes_sync"]) << std::endl;
}

// With async=off nothing runs in the background; the aging ticks run inline,
// when the process calls the allocator.  The child frees the set, stays idle
// for 600 ms (no thread may appear), then calls the allocator every 50 ms in
// the way `drive` says until the memory is back.
void sync_mode_scenario(const std::vector<std::string>& env, const char* drive) {
    const int64_t mb = 320, slack = 32, dirty_kib = 1024;
    Child c = run_child({"rss", "mb=" + std::to_string(mb), "phase=drive", std::string("drive=") + drive,
                         "idle_first_ms=600", "slack_mib=" + std::to_string(slack),
                         "dirty_kib=" + std::to_string(dirty_kib), "timeout_ms=10000"},
                        env, kChildTimeout);
    Report report(c);
    check_rss_returned(c, mb, slack, dirty_kib);
    if (::testing::Test::HasFatalFailure()) return;
    for (const char* phase : {"start", "freed", "idle", "settle"}) {
        EXPECT_EQ(c[std::string(phase) + ".tasks"], 1) << "a thread exists in sync mode (" << phase << ")";
        EXPECT_EQ(c[std::string(phase) + ".reclaim_thread"], 0) << phase;
        EXPECT_EQ(c[std::string(phase) + ".reclaim_uring"], 0) << phase;
        EXPECT_EQ(c[std::string(phase) + ".released_bytes_async"], 0) << phase;
    }
    EXPECT_GT(c["settle.released_bytes_sync"], 0);
    // The pages still dirty after the idle phase went back because of the
    // allocator calls made since: inline ticks, not the free itself.
    if (c["idle.dirty_bytes"] > dirty_kib * 1024) {
        EXPECT_GT(c["settle.released_bytes_sync"], c["idle.released_bytes_sync"]);
    }
    std::cout << "[ reclaim  ] sync (" << drive << "): start " << mib(c["start.rss"]) << ", peak "
              << mib(c["peak.rss"]) << ", after free " << mib(c["freed.rss"]) << " (" << mib(c["freed.dirty_bytes"])
              << " dirty), after 600 ms idle " << mib(c["idle.rss"]) << " (" << mib(c["idle.dirty_bytes"])
              << " dirty), settled " << mib(c["settle.rss"]) << " after " << c["settle.settled_ms"] << " ms and "
              << c["settle.drives"] << " rounds of calls; released sync " << mib(c["settle.released_bytes_sync"])
              << std::endl;
}

// Calls that leave the thread cache: 512 objects of 64 B, more than a bin
// holds, so refills and flushes take the slow paths.
TEST(RssReturns, SyncModeReleasesOnAllocatorSlowPaths) { sync_mode_scenario({"BTM_ASYNC=off"}, "burst"); }

// The seed's spelling of the same knob.
TEST(RssReturns, SeedSpellingNoAsyncSelectsTheSyncPath) { sync_mode_scenario({"BTM_NO_ASYNC=1"}, "burst"); }

// What a mostly idle service does: every 50 ms, four small objects of the
// same sizes from the same four call sites, allocated and freed.  These calls
// are the process "calling into the allocator again"; they must drive the
// inline ticks like any others.  The child makes one such round right after
// the free (so a bin the free left empty or full takes its slow path then,
// not during the measurement) and one before the big set; intern mode gives
// the four sites partitions of their own, so the big set never touches their
// bins.  What is measured is then exactly: steady calls that the thread cache
// serves, after a free that left pages dirty.
TEST(RssReturns, SyncModeReleasesUnderSteadySmallTraffic) {
    sync_mode_scenario({"BTM_ASYNC=off", "BTM_PARTITION_MODE=intern"}, "steady");
}

TEST(RssReturns, AsyncModeUsesIoUringWhenTheKernelAllowsIt) {
    if (!BTM_TEST_URING_BUILT) GTEST_SKIP() << "libbtmalloc was built without liburing (liburing-dev not found)";
    std::string why;
    if (!kernel_allows_io_uring(why)) GTEST_SKIP() << why;
    Child c = run_child({"lazy"}, {"BTM_ASYNC=on"}, kChildTimeout);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    EXPECT_EQ(c["big.reclaim_thread"], 1);
    EXPECT_EQ(c["big.reclaim_uring"], 1) << "io_uring works in this process's parent, but the reclaim thread "
                                            "does not release through it";
    EXPECT_GT(c["big.released_bytes_async"], 0);
}

// ---------------------------------------------------------------- prefault

TEST(Prefault, TheThreadFaultsPagesInAheadOfAGrowingHeap) {
    Child c = run_child({"prefault"}, {"BTM_ASYNC=on"}, kChildTimeout);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    ASSERT_EQ(c["before.reclaim_thread"], 1) << "the heap gave memory back but no thread started";
    EXPECT_LT(c["before.dirty_bytes"], 1 * kMiB) << "the freed set did not go back before the regrowth";
    EXPECT_GT(c["grown.prefault_bytes"], c["before.prefault_bytes"])
        << "20 MiB of growth into released memory, and nothing was faulted in ahead of it";
}

// ---------------------------------------------------------------- malloc_trim

void trim_scenario(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    Child c = run_child(args, env, kChildTimeout);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    const int64_t rss0 = c["start.rss"];
    EXPECT_GE(c["peak.rss"], rss0 + 64 * kMiB) << "the set was not resident: the test measures nothing";
    EXPECT_EQ(c["trim1.result"], 1) << "malloc_trim(0) after freeing a large set";
    EXPECT_LE(c["trim1.rss"], rss0 + 8 * kMiB)
        << "right after malloc_trim(0): RSS " << mib(c["trim1.rss"]) << ", at the start " << mib(rss0);
    EXPECT_EQ(c["trim1.dirty_bytes"], 0) << "malloc_trim left free pages backed";
    EXPECT_EQ(c["trim1.large_cached_bytes"], 0) << "malloc_trim kept freed large blocks mapped";
    EXPECT_EQ(c["trim2.result"], 0) << "a second malloc_trim(0) with nothing free reported a release";
    std::cout << "[ reclaim  ] trim: start " << mib(rss0) << ", peak " << mib(c["peak.rss"]) << ", after free "
              << mib(c["freed.rss"]) << ", after malloc_trim " << mib(c["trim1.rss"]) << std::endl;
}

TEST(MallocTrim, ReturnsOneAndGivesEverythingBackInAsyncMode) {
    trim_scenario({"trim", "mb=256"}, {"BTM_ASYNC=on"});
}

TEST(MallocTrim, ReturnsOneAndGivesEverythingBackInSyncModeSmallObjectsOnly) {
    // No large blocks: the release must come from the slabs.
    trim_scenario({"trim", "mb=128", "small_pct=100", "medium_pct=0"}, {"BTM_ASYNC=off"});
}

// ---------------------------------------------------------------- lazy start

TEST(LazyThread, AProcessThatAllocatesLittleHasNoReclaimThread) {
    Child c = run_child({"lazy"}, {"BTM_ASYNC=on"}, kChildTimeout);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    // (No slabs yet: a process this small is still in its start-up phase.)
    EXPECT_GT(c["small.malloc_calls_slow"], 0) << "the small allocations did not go through btmalloc";
    EXPECT_EQ(c["small.reclaim_thread"], 0);
    EXPECT_EQ(c["small.tasks"], 1) << "threads in a process that allocated a few KB";
    // The same process, once it has megabytes to give back, gets its thread.
    EXPECT_EQ(c["big.reclaim_thread"], 1);
    EXPECT_GE(c["big.tasks"], 2);
}

TEST(LazyThread, SyncModeNeverStartsAThread) {
    Child c = run_child({"lazy", "timeout_ms=1000"}, {"BTM_ASYNC=off"}, kChildTimeout);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    EXPECT_EQ(c["small.tasks"], 1);
    EXPECT_EQ(c["big.tasks"], 1);
    EXPECT_EQ(c["big.reclaim_thread"], 0);
    EXPECT_GT(c["big.released_bytes_sync"], 0);
}

TEST(LazyThread, UnshareOfAUserNamespaceWorksAfterALittleAllocation) {
    Child c = run_child({"unshare"}, {"BTM_ASYNC=on"}, kChildTimeout);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    ASSERT_EQ(c["small.tasks"], 1);
    int64_t small = c["small.unshare_errno"];
    if (small == EPERM || small == ENOSPC || small == ENOSYS || small == EACCES)
        GTEST_SKIP() << "SKIPPED: user namespaces are not allowed here (unshare(CLONE_NEWUSER): errno " << small
                     << " in a one-thread process)";
    EXPECT_EQ(small, 0) << "unshare(CLONE_NEWUSER) failed in a process that allocated a few KB";
    // The check can fail: with the background thread running, the kernel
    // refuses the same call.
    ASSERT_GE(c["big.tasks"], 2);
    EXPECT_EQ(c["big.unshare_errno"], EINVAL);
}

// ---------------------------------------------------------------- io_uring refused

// Issue 22: under a filter that kills (or traps) on io_uring_setup, a process
// whose reclaim thread would start died of SIGSYS (exit 159).  Under any
// filter the library now returns memory inline, never asking for a ring.
class SeccompFilter : public ::testing::TestWithParam<const char*> {};

TEST_P(SeccompFilter, ProcessSurvivesWithDataIntactAndMemoryReturnsInline) {
    std::string action = GetParam();
    // Inline, memory goes back on the allocator's slow paths: the wait drives them.
    Child c = run_child({"seccomp", "action=" + action, "rounds=4", "timeout_ms=10000", "drive=burst"}, {},
                        kChildTimeout);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    EXPECT_EQ(c["before_filter.reclaim_thread"], 0);
    EXPECT_EQ(c["filter.seccomp_mode"], 2);
    if (action == "eperm" || action == "enosys") {
        EXPECT_EQ(c["filter.io_uring_setup_errno"], action == "eperm" ? EPERM : ENOSYS);
    }
    EXPECT_EQ(c["stress.corrupt"], 0);
    EXPECT_GT(c["stress.checked"], 10000);
    EXPECT_EQ(c["settle.reclaim_thread"], 0) << "under a filter the reclaim thread must not start";
    EXPECT_EQ(c["settle.reclaim_uring"], 0);
    EXPECT_GT(c["settle.released_bytes_sync"], 0);
    EXPECT_GE(c["settle.settled_ms"], 0) << "memory did not come back inline: RSS " << mib(c["settle.rss"])
                                         << ", at the start " << mib(c["start.rss"]);
}

INSTANTIATE_TEST_SUITE_P(IoUringActions, SeccompFilter,
                         ::testing::Values("kill", "kill_process", "trap", "eperm", "enosys"));

// A filter installed (with TSYNC) after the ring was opened: the reclaim
// thread sees it before its next use of the ring and drops the ring.
TEST(SeccompFilterLate, KillFilterAfterTheRingOpenedIsSurvived) {
    std::string why;
    if (!BTM_TEST_URING_BUILT || !kernel_allows_io_uring(why))
        GTEST_SKIP() << "SKIPPED: " << (BTM_TEST_URING_BUILT ? why : "built without liburing");
    Child c = run_child({"seccomp", "action=kill_process", "when=late", "rounds=4", "timeout_ms=10000"}, {},
                        kChildTimeout);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    EXPECT_EQ(c["unfiltered.reclaim_uring"], 1) << "the ring was not open before the filter: nothing tested";
    EXPECT_EQ(c["filter.seccomp_mode"], 2);
    EXPECT_EQ(c["stress.corrupt"], 0);
    EXPECT_EQ(c["settle.reclaim_uring"], 0);
    EXPECT_GE(c["settle.settled_ms"], 0);
}

// The knob seccomp_async=on keeps the thread and tries the ring under a
// filter; a filter that fails io_uring_setup leaves it on madvise.
TEST(IoUringRefused, StressRunsOnTheMadviseFallbackAndMemoryReturns) {
    Child c = run_child({"seccomp", "rounds=4", "timeout_ms=10000"}, {"BTM_ASYNC=on", "BTM_SECCOMP_ASYNC=on"},
                        kChildTimeout);
    Report report(c);
    // The filter went in before the reclaim thread could try io_uring.
    EXPECT_EQ(c["before_filter.tasks"], 1);
    EXPECT_EQ(c["before_filter.reclaim_thread"], 0);
    EXPECT_EQ(c["filter.seccomp_mode"], 2);
    EXPECT_EQ(c["filter.io_uring_setup_errno"], EPERM) << "the seccomp filter does not refuse io_uring_setup";
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    EXPECT_EQ(c["stress.corrupt"], 0);
    EXPECT_GT(c["stress.checked"], 10000);
    EXPECT_GT(c["stress.released_bytes"], 0);
    EXPECT_EQ(c["settle.reclaim_uring"], 0);
    EXPECT_EQ(c["settle.released_bytes_async"], 0);
    EXPECT_GT(c["settle.released_bytes_sync"], 0);
    EXPECT_EQ(c["settle.reclaim_thread"], 1) << "the background thread should run and fall back to madvise";
    EXPECT_GE(c["settle.settled_ms"], 0) << "memory did not come back after the stress: RSS "
                                         << mib(c["settle.rss"]) << ", at the start " << mib(c["start.rss"])
                                         << ", dirty " << mib(c["settle.dirty_bytes"]);
    EXPECT_LE(c["settle.rss"], c["start.rss"] + 32 * kMiB);
    std::cout << "[ reclaim  ] seccomp: stress " << c["stress.ms"] << " ms, " << c["stress.checked"]
              << " objects verified, released " << mib(c["settle.released_bytes_sync"])
              << " by madvise; settled at " << mib(c["settle.rss"]) << " (start " << mib(c["start.rss"]) << ")"
              << std::endl;
}

// ---------------------------------------------------------------- stress (label stress)

void stress_scenario(const std::vector<std::string>& args, const std::vector<std::string>& env, bool async) {
    Child c = run_child(args, env, 600);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    EXPECT_EQ(c["stress.corrupt"], 0);
    EXPECT_GT(c["stress.checked"], 100000);
    EXPECT_GT(c["stress.survivor_checks"], 10000);
    // Reclaim raced with the workload: pages went back all along, and also
    // during the pauses, while the survivors stayed live around them.
    const int64_t rounds = c["stress.pauses"];
    EXPECT_GE(c["stress.released_bytes"], rounds * 32 * kMiB)
        << "only " << mib(c["stress.released_bytes"]) << " released over " << rounds << " swings of 90 MiB";
    if (async) {
        EXPECT_GE(c["stress.pauses_with_release"] * 2, rounds) << "the background thread rarely released pages "
                                                                  "while only the survivors were live";
        EXPECT_EQ(c["end.reclaim_thread"], 1);
    }
    std::cout << "[ reclaim  ] stress: " << c["stress.ms"] << " ms, " << c["stress.ops"] << " allocations, "
              << c["stress.checked"] << " frees verified, " << c["stress.survivor_checks"]
              << " survivor checks, released " << mib(c["stress.released_bytes"]) << " ("
              << mib(c["stress.released_async"]) << " async) with releases in " << c["stress.pauses_with_release"]
              << " of " << rounds << " pauses; malloc_trim racers " << c["stress.trims"] << std::endl;
}

TEST(ReclaimStress, ShadowStressWithTheBackgroundThreadReleasing) {
    stress_scenario({"stress"}, {"BTM_ASYNC=on"}, true);
}

// Nothing kept warm, tiny thread caches: slabs drain and chunks go back as
// soon as possible, so releases and reuse of released pages are as frequent
// as they get.
TEST(ReclaimStress, ShadowStressWithNoWarmPoolAndSmallThreadCaches) {
    stress_scenario({"stress", "rounds=6", "seed=4"},
                    {"BTM_ASYNC=on", "BTM_WARM_CHUNKS=0", "BTM_WARM_SLABS=0", "BTM_TCACHE_BYTES=65536"}, true);
}

// The inline ticks, run by whichever thread takes a slow path, and a thread
// that calls malloc_trim(0) every 5 ms: releases race the workload from
// every thread.
TEST(ReclaimStress, ShadowStressWithInlineTicksAndAMallocTrimRacer) {
    stress_scenario({"stress", "rounds=6", "seed=5", "trimmer=1"}, {"BTM_ASYNC=off"}, false);
}

TEST(ReclaimFork, ChildrenOfAProcessWhoseReclaimThreadIsBusy) {
    const int forks = 50 * int(btm_test::stress_scale());
    Child c = run_child({"fork", "forks=" + std::to_string(forks)}, {"BTM_ASYNC=on"}, 600);
    Report report(c);
    ASSERT_TRUE(c.exited_ok()) << c.describe();
    EXPECT_EQ(c["before_forks.reclaim_thread"], 1) << "the reclaim thread was not running when the forks began";
    EXPECT_EQ(c["forks"], forks);
    EXPECT_EQ(c["fork.killed"], 0) << c["fork.hung"] << " of them hung (60 s alarm)";
    EXPECT_EQ(c["fork.failures"], 0) << "children failed; their exit codes are in the output";
    EXPECT_EQ(c["corrupt"], 0);
    EXPECT_GT(c["fork.released_during"], 0) << "the reclaim thread released nothing while the forks ran";
    std::cout << "[ reclaim  ] fork: " << forks << " forks, " << c["fork.swings"] << " swings of the parent, "
              << mib(c["fork.released_during"]) << " released meanwhile, slowest child " << c["fork.worst_ms"]
              << " ms" << std::endl;
}

}  // namespace
