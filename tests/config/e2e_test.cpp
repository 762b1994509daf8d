// End to end: the probe program (probe.cpp, which calls config::load() as the
// allocator does and counts allocations meanwhile) started with BTM_CONF
// pointing at good, bad and hostile files, and as a setuid program.  Each
// run must start, finish its work, allocate nothing inside load() and print
// exactly the expected warnings.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

#ifndef CONFIG_PROBE
#error "CONFIG_PROBE must name the probe executable"
#endif

namespace btm::config::test {
namespace {

struct Result {
    int status = -1;  // exit status, or 128 + signal
    bool timed_out = false;
    std::string out, err;
};

// Runs `exe` with exactly `env` (plus PATH), optionally as user nobody, for
// at most ten seconds.
Result run(const std::vector<std::string>& env, bool as_nobody = false, const std::string& exe = CONFIG_PROBE) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return {};
    std::vector<std::string> vars = env;
    vars.push_back("PATH=/usr/bin:/bin");
    std::vector<char*> envp;
    for (auto& s : vars) envp.push_back(s.data());
    envp.push_back(nullptr);
    char* argv[] = {const_cast<char*>(exe.c_str()), nullptr};
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        if (as_nobody && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(97);
        execve(exe.c_str(), argv, envp.data());
        _exit(98);
    }
    close(out[1]);
    close(err[1]);
    Result r;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int open_fds = 2;
    while (open_fds > 0) {
        timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ms = 10000 - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left_ms <= 0) {
            r.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        if (poll(fds, 2, int(left_ms)) <= 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i == 0 ? r.out : r.err).append(buf, size_t(n));
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) close(f.fd);
    int status = 0;
    waitpid(pid, &status, 0);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

// The run started, allocated nothing while loading and did its work.
void expect_healthy(const Result& r) {
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    BTM_EXPECT_CONTAINS(r.out, "allocations_during_load=0\n");
    BTM_EXPECT_CONTAINS(r.out, "ran ok\n");
}

struct EndToEnd : ::testing::Test {
    TempDir dir;
    Result run_with(const std::string& conf, std::vector<std::string> env = {}, bool as_nobody = false) {
        env.push_back("BTM_CONF=" + conf);
        return run(env, as_nobody);
    }
};

TEST_F(EndToEnd, NoFileAtAll) {
    Result r = run({"BTM_CONF="});
    expect_healthy(r);
    EXPECT_EQ(r.err, "");
    BTM_EXPECT_CONTAINS(r.out, "partitions=64 default\n");
}

TEST_F(EndToEnd, GoodFile) {
    auto f = dir.write("good.conf",
                       "# tuned\n"
                       "partitions = 8\r\n"
                       "[program config_pro?e]\n"
                       "mesh = on\n"
                       "[program other]\n"
                       "async = off\n"
                       "[global]\n"
                       "tcache_bytes = 2m");
    Result r = run_with(f);
    expect_healthy(r);
    EXPECT_EQ(r.err, "");
    BTM_EXPECT_CONTAINS(r.out, "partitions=8 " + f + ":2\n");
    BTM_EXPECT_CONTAINS(r.out, "mesh=on " + f + ":4\n");
    BTM_EXPECT_CONTAINS(r.out, "async=on default\n");
    BTM_EXPECT_CONTAINS(r.out, "tcache_bytes=2m " + f + ":8\n");
    BTM_EXPECT_CONTAINS(r.out, "secure=0\n");
}

TEST_F(EndToEnd, BadLinesAreOneWarningEach) {
    std::string text =
        "partition = 8\n"
        "async = maybe\n"
        "partitions = 5000\n"
        "nonsense\n" +
        std::string(2000, '#') + "\n" + std::string("mesh = on\0x\n", 12) +
        "[program]\n"
        "verbose = on\n"
        "[global]\n"
        "warm_slabs = 7\n";
    auto f = dir.write("bad.conf", text);
    Result r = run_with(f);
    expect_healthy(r);
    std::string p = "btmalloc: " + f + ":";
    EXPECT_EQ(r.err, p + "1: unknown key 'partition'\n" +
                         p + "2: bad value 'maybe' for async: expected on or off\n" +
                         p + "3: out of range: partitions = 5000 (allowed 1..1024)\n" +
                         p + "4: malformed line: expected KEY = VALUE\n" +
                         p + "5: overlong line: more than 1024 bytes; ignored\n" +
                         p + "6: malformed line: control characters or NUL bytes\n" +
                         p + "7: malformed section header: expected [program PATTERN...] or [global]; "
                             "lines up to the next header are ignored\n");
    BTM_EXPECT_CONTAINS(r.out, "warm_slabs=7 " + f + ":10\n");
    BTM_EXPECT_CONTAINS(r.out, "verbose=off default\n");
}

TEST_F(EndToEnd, Garbage) {
    std::mt19937 rng(7);
    std::string junk(60000, '\0');
    for (char& c : junk) c = char(rng());
    auto f = dir.write("garbage.conf", junk);
    Result r = run_with(f);
    expect_healthy(r);
    // At most ten problems and one summary line, each a proper diagnostic.
    size_t lines = size_t(std::count(r.err.begin(), r.err.end(), '\n'));
    EXPECT_GE(lines, 1u);
    EXPECT_LE(lines, 11u);
    std::istringstream in(r.err);
    for (std::string line; std::getline(in, line);) {
        EXPECT_EQ(line.rfind("btmalloc: " + f + ":", 0), 0u) << line;
        for (char c : line) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << line;
    }
}

TEST_F(EndToEnd, TenMegabyteFile) {
    auto f = dir.write("huge.conf", std::string(10 << 20, 'a'));
    Result r = run_with(f);
    expect_healthy(r);
    EXPECT_EQ(r.err, "btmalloc: " + f + ": larger than 65536 bytes; ignored\n");
}

TEST_F(EndToEnd, Directory) {
    Result r = run_with(dir.path);
    expect_healthy(r);
    EXPECT_EQ(r.err, "btmalloc: " + dir.path + ": a directory, not a regular file; ignored\n");
}

TEST_F(EndToEnd, FifoDoesNotBlock) {
    std::string fifo = dir.sub("fifo.conf");
    ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
    Result r = run_with(fifo);
    expect_healthy(r);
    EXPECT_EQ(r.err, "btmalloc: " + fifo + ": a FIFO, not a regular file; ignored\n");
}

TEST_F(EndToEnd, Device) {
    Result r = run_with("/dev/zero");
    expect_healthy(r);
    EXPECT_EQ(r.err, "btmalloc: /dev/zero: a character device, not a regular file; ignored\n");
}

TEST_F(EndToEnd, UnreadableFile) {
    auto f = dir.write("secret.conf", "partitions = 8\n", 0600);
    bool root = geteuid() == 0;
    if (!root) chmod(f.c_str(), 0);
    Result r = run_with(f, {}, root);  // root reads anything: run as nobody
    expect_healthy(r);
    EXPECT_EQ(r.err, "btmalloc: " + f + ": cannot open: permission denied\n");
    BTM_EXPECT_CONTAINS(r.out, "partitions=64 default\n");
}

TEST_F(EndToEnd, MissingFile) {
    Result r = run_with(dir.sub("missing.conf"));
    expect_healthy(r);
    EXPECT_EQ(r.err, "btmalloc: " + dir.sub("missing.conf") + ": cannot open: no such file or directory\n");
}

TEST_F(EndToEnd, EnvironmentOverridesAndReportsBadValues) {
    auto f = dir.write("c.conf", "partitions = 8\nasync = off\n");
    Result r = run_with(f, {"BTM_PARTITIONS=16", "BTM_MESH=sometimes", "BTM_NO_ASYNC=0"});
    expect_healthy(r);
    EXPECT_EQ(r.err, "btmalloc: BTM_MESH: bad value 'sometimes': expected on or off\n");
    BTM_EXPECT_CONTAINS(r.out, "partitions=16 environment\n");
    BTM_EXPECT_CONTAINS(r.out, "async=on environment\n");
}

TEST_F(EndToEnd, VerbosePrintsTheEffectiveConfiguration) {
    auto f = dir.write("v.conf", "partitions = 8\nverbose = on\n");
    Result r = run_with(f, {"BTM_MESH=on"});
    expect_healthy(r);
    EXPECT_EQ(size_t(std::count(r.err.begin(), r.err.end(), '\n')), size_t(kKnobCount)) << r.err;
    BTM_EXPECT_CONTAINS(r.err, "btmalloc: enabled = on (default)\n");
    BTM_EXPECT_CONTAINS(r.err, "btmalloc: partitions = 8 (" + f + ":1)\n");
    BTM_EXPECT_CONTAINS(r.err, "btmalloc: verbose = on (" + f + ":2)\n");
    BTM_EXPECT_CONTAINS(r.err, "btmalloc: mesh = on (environment)\n");
    Result quiet = run({"BTM_CONF=", "BTM_VERBOSE=1"});
    BTM_EXPECT_CONTAINS(quiet.err, "btmalloc: verbose = on (environment)\n");
}

// A copy of the probe owned by root with the set-user-ID bit, run by nobody:
// AT_SECURE is set, so BTM_* and BTM_CONF must be ignored.
TEST_F(EndToEnd, SetuidProgramIgnoresTheEnvironment) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to make a set-user-ID root program";
    std::string exe = dir.sub("config_probe");
    std::filesystem::copy_file(CONFIG_PROBE, exe);
    ASSERT_EQ(chown(exe.c_str(), 0, 0), 0);
    ASSERT_EQ(chmod(exe.c_str(), 04755), 0);
    auto f = dir.write("user.conf", "partitions = 8\nverbose = on\n");
    std::vector<std::string> env = {"BTM_CONF=" + f, "BTM_WARM_SLABS=9", "BTM_VERBOSE=1"};

    Result r = run(env, true, exe);
    expect_healthy(r);
    if (r.out.find("secure=1\n") == std::string::npos)
        GTEST_SKIP() << "set-user-ID has no effect here (nosuid mount?)";
    BTM_EXPECT_CONTAINS(r.out, "warm_slabs=2 ");
    BTM_EXPECT_LACKS(r.out, f);
    BTM_EXPECT_LACKS(r.out, "environment");
    BTM_EXPECT_LACKS(r.err, "btmalloc: verbose = on");

    // The same program without the bit honours both: the test can tell.
    ASSERT_EQ(chmod(exe.c_str(), 0755), 0);
    Result plain = run(env, true, exe);
    expect_healthy(plain);
    BTM_EXPECT_CONTAINS(plain.out, "secure=0\n");
    BTM_EXPECT_CONTAINS(plain.out, "warm_slabs=9 environment\n");
    BTM_EXPECT_CONTAINS(plain.out, "partitions=8 " + f + ":1\n");
}

}  // namespace
}  // namespace btm::config::test
