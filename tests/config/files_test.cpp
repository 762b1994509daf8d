// Files, drop-in directories, BTM_CONF, the environment, secure mode and the
// verbose printout: load_file(), load_files(), apply_environment(),
// load_with() and print() on real files in a scratch directory.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <string>
#include <vector>

#include "test_util.h"

namespace btm::config::test {
namespace {

// An environment block for the functions that take one.
struct Env {
    std::vector<std::string> vars;
    std::vector<char*> ptrs;
    Env(std::initializer_list<std::string> v) : vars(v) {
        for (auto& s : vars) ptrs.push_back(s.data());
        ptrs.push_back(nullptr);
    }
    char** get() { return ptrs.data(); }
};

// Runs `fn` in a child process as user nobody; returns its exit status.
template <class Fn>
int as_nobody(Fn fn) {
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(99);
        _exit(fn());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

struct Files : ::testing::Test {
    TempDir dir;
    Conf r{"prog"};
    void SetUp() override {
        r.opt.system_file = nullptr;
        r.opt.dropin_dir = nullptr;
    }
    unsigned load(const std::string& path, bool must_exist = true) {
        return load_file(path.c_str(), must_exist, r.opt, &r.v, &r.o);
    }
};

TEST_F(Files, RegularFile) {
    auto p = dir.write("a.conf", "partitions = 8\n[program prog]\nmesh = on\n");
    EXPECT_EQ(load(p), 0u);
    EXPECT_EQ(r.get("partitions"), 8u);
    EXPECT_EQ(r.get("mesh"), 1u);
    EXPECT_EQ(r.file("mesh"), p);
    EXPECT_EQ(r.line("mesh"), 3u);
}

TEST_F(Files, SymlinkToARegularFileIsFollowed) {
    auto p = dir.write("real.conf", "partitions = 8\n");
    ASSERT_EQ(symlink(p.c_str(), dir.sub("link.conf").c_str()), 0);
    EXPECT_EQ(load(dir.sub("link.conf")), 0u);
    EXPECT_EQ(r.get("partitions"), 8u);
}

TEST_F(Files, MissingFile) {
    EXPECT_EQ(load(dir.sub("nope.conf"), false), 0u);
    EXPECT_TRUE(r.diags.empty());
    EXPECT_EQ(load(dir.sub("nope.conf"), true), 1u);
    EXPECT_EQ(r.diags.at(0), dir.sub("nope.conf") + ": cannot open: no such file or directory");
    EXPECT_EQ(load(dir.sub("nope/x.conf"), true), 1u);
}

TEST_F(Files, DirectoryIsRejected) {
    EXPECT_EQ(load(dir.path), 1u);
    EXPECT_EQ(r.diags.at(0), dir.path + ": a directory, not a regular file; ignored");
}

TEST_F(Files, FifoIsRejectedWithoutBlocking) {
    std::string fifo = dir.sub("fifo.conf");
    ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
    EXPECT_EQ(load(fifo), 1u);  // no writer ever opens it: a read would block forever
    EXPECT_EQ(r.diags.at(0), fifo + ": a FIFO, not a regular file; ignored");
}

TEST_F(Files, DevicesAreRejected) {
    EXPECT_EQ(load("/dev/null"), 1u);
    EXPECT_EQ(r.diags.at(0), "/dev/null: a character device, not a regular file; ignored");
    EXPECT_EQ(load("/dev/zero"), 1u);
}

TEST_F(Files, SizeLimit) {
    std::string exact(kMaxFileBytes, '\n');
    exact.replace(0, 15, "partitions = 8\n");
    EXPECT_EQ(load(dir.write("exact.conf", exact)), 0u);
    EXPECT_EQ(r.get("partitions"), 8u);

    std::string over = "partitions = 4\n" + std::string(kMaxFileBytes, '\n');
    auto p = dir.write("over.conf", over);
    EXPECT_EQ(load(p), 1u);
    EXPECT_EQ(r.diags.at(0), p + ": larger than 65536 bytes; ignored");
    EXPECT_EQ(r.get("partitions"), 8u);  // nothing of it applies

    auto big = dir.write("big.conf", std::string(10 << 20, 'x'));
    EXPECT_EQ(load(big), 1u);
    EXPECT_EQ(r.diags.size(), 2u);
}

TEST_F(Files, UnreadableFile) {
    auto p = dir.write("secret.conf", "partitions = 8\n", 0600);
    if (geteuid() == 0) {
        // root reads anything: check as nobody, in a child.
        int rc = as_nobody([&] {
            Conf child("prog");
            unsigned n = load_file(p.c_str(), true, child.opt, &child.v, &child.o);
            bool ok = n == 1 && child.diags.at(0) == p + ": cannot open: permission denied" &&
                      child.get("partitions") == 64;
            return ok ? 0 : 1;
        });
        EXPECT_EQ(rc, 0);
    } else {
        chmod(p.c_str(), 0);
        EXPECT_EQ(load(p), 1u);
        EXPECT_EQ(r.diags.at(0), p + ": cannot open: permission denied");
    }
}

// Any user who can write a file the library reads could switch hardening
// off for root's daemons: the rule holds for every process, not only
// set-user-ID ones.
TEST_F(Files, UntrustedFilesAreIgnoredByEveryProcess) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create files owned by root and by others";
    r.opt.trusted_uid = 0;
    auto good = dir.write("good.conf", "partitions = 8\n", 0644);
    auto group_w = dir.write("gw.conf", "partitions = 16\n", 0664);
    auto other_w = dir.write("ow.conf", "partitions = 16\n", 0646);
    auto all_w = dir.write("aw.conf", "partitions = 16\n", 0666);
    auto user = dir.write("user.conf", "partitions = 16\n", 0644);
    ASSERT_EQ(chown(user.c_str(), 65534, 65534), 0);
    for (bool secure : {false, true}) {
        r.opt.secure = secure;
        EXPECT_EQ(load(good), 0u);
        EXPECT_EQ(r.get("partitions"), 8u);
        for (const auto& [p, why] : {std::pair{group_w, "writable by group or others (mode 0664); ignored"},
                                     std::pair{other_w, "writable by group or others (mode 0646); ignored"},
                                     std::pair{all_w, "writable by group or others (mode 0666); ignored"},
                                     std::pair{user, "owned by uid 65534, not root; ignored"}}) {
            r.diags.clear();
            EXPECT_EQ(load(p), 1u) << p;
            ASSERT_EQ(r.diags.size(), 1u) << r.all_diags();
            EXPECT_EQ(r.diags.at(0), p + ": " + why);
            EXPECT_EQ(r.get("partitions"), 8u) << "secure " << secure;
        }
    }
}

// btmctl config check says why the library would ignore a file, and still
// reports the problems inside it.
TEST_F(Files, CheckReportsAnUntrustedFileAndItsLines) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create files owned by others";
    r.opt.trusted_uid = 0;
    r.opt.check_all = true;
    auto user = dir.write("user.conf", "partitions = 16\nbogus = 1\n", 0644);
    ASSERT_EQ(chown(user.c_str(), 65534, 65534), 0);
    EXPECT_EQ(load(user), 2u);
    EXPECT_EQ(r.all_diags(), user + ": owned by uid 65534, not root; ignored\n" + user + ":2: unknown key 'bogus'\n");
    EXPECT_EQ(r.get("partitions"), 64u);
}

struct Dirs : Files {
    void SetUp() override {
        r.opt.system_file = nullptr;
        r.opt.dropin_dir = nullptr;
        system_file = dir.sub("btmalloc.conf");
        dropins = dir.sub("btmalloc.conf.d");
        mkdir(dropins.c_str(), 0755);
        r.opt.system_file = system_file.c_str();
        r.opt.dropin_dir = dropins.c_str();
    }
    unsigned load_all(char** env = nullptr) { return load_files(env, r.opt, &r.v, &r.o); }
    std::string system_file, dropins;
};

TEST_F(Dirs, NothingThereIsFine) {
    rmdir(dropins.c_str());
    EXPECT_EQ(load_all(), 0u);
    EXPECT_TRUE(r.diags.empty());
}

TEST_F(Dirs, DropInsComeAfterTheMainFileInByteOrder) {
    dir.write("btmalloc.conf", "partitions = 2\nwarm_slabs = 1\nwarm_chunks = 1\nmesh = on\n");
    dir.write("btmalloc.conf.d/20-b.conf", "warm_slabs = 20\nwarm_chunks = 20\n");
    dir.write("btmalloc.conf.d/10-a.conf", "warm_slabs = 10\npartitions = 10\n");
    dir.write("btmalloc.conf.d/9-c.conf", "warm_chunks = 9\n");
    dir.write("btmalloc.conf.d/Z.conf", "verbose = on\n");
    EXPECT_EQ(load_all(), 0u) << r.all_diags();
    EXPECT_EQ(r.get("partitions"), 10u);
    EXPECT_EQ(r.get("warm_slabs"), 20u);
    EXPECT_EQ(r.get("warm_chunks"), 9u);  // "9-c" sorts after "20-b"
    EXPECT_EQ(r.get("mesh"), 1u);
    EXPECT_EQ(r.get("verbose"), 1u);
    EXPECT_EQ(r.file("warm_chunks"), dropins + "/9-c.conf");
    EXPECT_EQ(r.file("mesh"), system_file);
}

TEST_F(Dirs, OnlyVisibleDotConfFilesAreRead) {
    for (const char* name : {".hidden.conf", "x.conf~", "x.conf.dpkg-old", "README", ".conf", "xconf", "x.CONF"})
        dir.write(std::string("btmalloc.conf.d/") + name, "partitions = 2\n");
    EXPECT_EQ(load_all(), 0u) << r.all_diags();
    EXPECT_EQ(r.get("partitions"), 64u);
}

TEST_F(Dirs, NonRegularDropInsAreReportedAndSkipped) {
    mkdir((dropins + "/sub.conf").c_str(), 0755);
    mkfifo((dropins + "/fifo.conf").c_str(), 0644);
    dir.write("btmalloc.conf.d/z.conf", "partitions = 2\n");
    EXPECT_EQ(load_all(), 2u);
    BTM_EXPECT_CONTAINS(r.all_diags(), dropins + "/sub.conf: a directory, not a regular file; ignored");
    BTM_EXPECT_CONTAINS(r.all_diags(), dropins + "/fifo.conf: a FIFO, not a regular file; ignored");
    EXPECT_EQ(r.get("partitions"), 2u);
}

TEST_F(Dirs, AtMostSoManyDropInsAreRead) {
    for (unsigned i = 0; i < kMaxDropIns + 6; ++i) {
        char name[64];
        snprintf(name, sizeof name, "btmalloc.conf.d/%03u.conf", i);
        dir.write(name, "warm_slabs = " + std::to_string(i) + "\n");
    }
    EXPECT_EQ(load_all(), 1u);
    EXPECT_EQ(r.diags.at(0), dropins + ": more than 64 *.conf files; only the first 64 in name order are read");
    EXPECT_EQ(r.get("warm_slabs"), kMaxDropIns - 1);
}

TEST_F(Dirs, OverlongDropInNamesAreSkipped) {
    dir.write("btmalloc.conf.d/" + std::string(kMaxDropInName, 'n') + ".conf", "partitions = 2\n");
    EXPECT_EQ(load_all(), 1u);
    BTM_EXPECT_CONTAINS(r.diags.at(0), dropins + ": file name too long; ");
    EXPECT_EQ(r.get("partitions"), 64u);
}

TEST_F(Dirs, BtmConfReplacesEveryFile) {
    dir.write("btmalloc.conf", "partitions = 2\n");
    dir.write("btmalloc.conf.d/a.conf", "mesh = on\n");
    auto mine = dir.write("mine.conf", "warm_slabs = 5\n");
    Env env{"BTM_CONF=" + mine};
    EXPECT_EQ(load_all(env.get()), 0u);
    EXPECT_EQ(r.get("warm_slabs"), 5u);
    EXPECT_EQ(r.get("partitions"), 64u);
    EXPECT_EQ(r.get("mesh"), 0u);
}

TEST_F(Dirs, EmptyBtmConfReadsNoFile) {
    dir.write("btmalloc.conf", "partitions = 2\n");
    Env env{"BTM_CONF="};
    EXPECT_EQ(load_all(env.get()), 0u);
    EXPECT_EQ(r.get("partitions"), 64u);
}

TEST_F(Dirs, MissingBtmConfIsReported) {
    Env env{"BTM_CONF=" + dir.sub("nope.conf")};
    EXPECT_EQ(load_all(env.get()), 1u);
    EXPECT_EQ(r.diags.at(0), dir.sub("nope.conf") + ": cannot open: no such file or directory");
}

TEST_F(Dirs, SecureModeIgnoresBtmConf) {
    if (geteuid() != 0) GTEST_SKIP() << "the scratch files must be owned by root";
    dir.write("btmalloc.conf", "partitions = 2\n");
    auto mine = dir.write("mine.conf", "partitions = 5\n");
    Env env{"BTM_CONF=" + mine};
    r.opt.secure = true;
    EXPECT_EQ(load_all(env.get()), 0u) << r.all_diags();
    EXPECT_EQ(r.get("partitions"), 2u);
}

TEST_F(Dirs, AWritableDropInDirectoryIsIgnored) {
    if (geteuid() != 0) GTEST_SKIP() << "the scratch files must be owned by root";
    r.opt.trusted_uid = 0;
    dir.write("btmalloc.conf.d/a.conf", "partitions = 2\n");
    chmod(dropins.c_str(), 0777);
    for (bool secure : {false, true}) {
        r.opt.secure = secure;
        r.diags.clear();
        EXPECT_EQ(load_all(), 1u);
        EXPECT_EQ(r.diags.at(0), dropins + ": writable by group or others (mode 0777); ignored");
        EXPECT_EQ(r.get("partitions"), 64u);
    }
    chmod(dropins.c_str(), 0755);
    r.diags.clear();
    EXPECT_EQ(load_all(), 0u);
    EXPECT_EQ(r.get("partitions"), 2u);
}

TEST_F(Dirs, UntrustedSystemFileAndDropInAreIgnored) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create files owned by others";
    r.opt.trusted_uid = 0;
    dir.write("btmalloc.conf", "partitions = 2\n", 0666);
    auto d = dir.write("btmalloc.conf.d/a.conf", "mesh = on\n");
    ASSERT_EQ(chown(d.c_str(), 65534, 65534), 0);
    EXPECT_EQ(load_all(), 2u);
    EXPECT_EQ(r.all_diags(), system_file + ": writable by group or others (mode 0666); ignored\n" + d +
                                 ": owned by uid 65534, not root; ignored\n");
    EXPECT_EQ(r.get("partitions"), 64u);
    EXPECT_EQ(r.get("mesh"), 0u);
}

// BTM_CONF names a file chosen by whoever sets the environment, who could as
// well set BTM_<KEY>: its owner does not matter (btmalloc.conf(5)), and in
// secure mode it is not read at all.
TEST_F(Dirs, BtmConfIsReadWhoeverOwnsIt) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create files owned by others";
    r.opt.trusted_uid = 0;
    auto mine = dir.write("mine.conf", "partitions = 5\n", 0666);
    ASSERT_EQ(chown(mine.c_str(), 65534, 65534), 0);
    Env env{"BTM_CONF=" + mine};
    EXPECT_EQ(load_all(env.get()), 0u) << r.all_diags();
    EXPECT_EQ(r.get("partitions"), 5u);
    r.opt.secure = true;
    set_defaults(&r.v, &r.o);
    EXPECT_EQ(load_all(env.get()), 0u) << r.all_diags();
    EXPECT_EQ(r.get("partitions"), 64u);
}

TEST(Environment, KnobsFromTheEnvironment) {
    Conf r;
    Env env{"PATH=/bin", "BTM_PARTITIONS=8", "BTM_TCACHE_BYTES=2m", "BTM_PARTITION_MODE=intern",
            "BTM_PAGEOUT=off", "BTM_CONF=/nowhere", "BTM_UNKNOWN=1", "btm_mesh=on", "BTM_MESHX=on"};
    EXPECT_EQ(apply_environment(env.get(), r.opt, &r.v, &r.o), 0u) << r.all_diags();
    EXPECT_EQ(r.get("partitions"), 8u);
    EXPECT_EQ(r.source("partitions"), kEnvironment);
    EXPECT_EQ(r.get("tcache_bytes"), 2u << 20);
    EXPECT_EQ(r.get("partition_mode"), 1u);
    EXPECT_EQ(r.get("pageout"), 0u);
    EXPECT_EQ(r.get("mesh"), 0u);
    EXPECT_EQ(r.source("mesh"), kDefault);
}

TEST(Environment, BadValuesAreReportedAndIgnored) {
    Conf r;
    Env env{"BTM_ASYNC=maybe", "BTM_PARTITIONS=5000", "BTM_MESH=", "BTM_VERBOSE= 1"};
    EXPECT_EQ(apply_environment(env.get(), r.opt, &r.v, &r.o), 4u);
    BTM_EXPECT_CONTAINS(r.all_diags(), "BTM_ASYNC: bad value 'maybe': expected on or off\n");
    BTM_EXPECT_CONTAINS(r.all_diags(), "BTM_PARTITIONS: out of range: 5000 (allowed 1..1024)\n");
    BTM_EXPECT_CONTAINS(r.all_diags(), "BTM_MESH: bad value '': expected on or off\n");
    BTM_EXPECT_CONTAINS(r.all_diags(), "BTM_VERBOSE: bad value ' 1': expected on or off\n");
    for (unsigned i = 0; i < kKnobCount; ++i) EXPECT_EQ(r.o.source[i], kDefault);
}

TEST(Environment, ObsoletePageoutSignalIsOneWarning) {
    Conf r;
    Env env{"BTM_PAGEOUT_SIGNAL=RTMIN+3"};
    EXPECT_EQ(apply_environment(env.get(), r.opt, &r.v, &r.o), 1u);
    BTM_EXPECT_CONTAINS(r.all_diags(), "BTM_PAGEOUT_SIGNAL: pageout_signal is obsolete and ignored");
    EXPECT_EQ(r.get("pageout"), 1u);
}

TEST(Environment, NoAsyncIsTheOldSpellingOfAsyncOff) {
    {
        Conf r;
        Env env{"BTM_NO_ASYNC=1"};
        apply_environment(env.get(), r.opt, &r.v, &r.o);
        EXPECT_EQ(r.get("async"), 0u);
        EXPECT_EQ(r.source("async"), kEnvironment);
    }
    {
        Conf r;
        r.parse("async = off\n");
        Env env{"BTM_NO_ASYNC=0"};
        apply_environment(env.get(), r.opt, &r.v, &r.o);
        EXPECT_EQ(r.get("async"), 1u);
    }
    {
        Conf r;
        Env env{"BTM_ASYNC=on", "BTM_NO_ASYNC=1"};
        apply_environment(env.get(), r.opt, &r.v, &r.o);
        EXPECT_EQ(r.get("async"), 1u);  // the current name wins
    }
}

TEST(Environment, IgnoredInSecureMode) {
    Conf r;
    r.opt.secure = true;
    Env env{"BTM_PARTITIONS=8", "BTM_NO_ASYNC=1", "BTM_VERBOSE=1"};
    EXPECT_EQ(apply_environment(env.get(), r.opt, &r.v, &r.o), 0u);
    for (unsigned i = 0; i < kKnobCount; ++i) EXPECT_EQ(r.o.source[i], kDefault);
}

TEST(Precedence, DefaultThenFileThenDropInThenEnvironment) {
    TempDir dir;
    auto sys = dir.write("btmalloc.conf", "partitions = 2\nwarm_slabs = 3\nwarm_chunks = 3\nmesh = on\n");
    dir.write("conf.d/50.conf", "warm_slabs = 50\nwarm_chunks = 50\n");
    std::string dropins = dir.sub("conf.d");
    Env env{"BTM_WARM_CHUNKS=99"};
    Options opt;
    opt.program = "prog";
    opt.system_file = sys.c_str();
    opt.dropin_dir = dropins.c_str();
    Values v;
    Origin o;
    load_with(env.get(), opt, &v, &o);
    EXPECT_EQ(v.verbose, 0u);
    EXPECT_EQ(o.source[k_verbose], kDefault);
    EXPECT_EQ(v.partitions, 2u);
    EXPECT_EQ(v.mesh, 1u);
    EXPECT_EQ(std::string(o.file[k_partitions]), sys);
    EXPECT_EQ(v.warm_slabs, 50u);
    EXPECT_EQ(std::string(o.file[k_warm_slabs]), dropins + "/50.conf");
    EXPECT_EQ(v.warm_chunks, 99u);
    EXPECT_EQ(o.source[k_warm_chunks], kEnvironment);
}

TEST(Program, NameOfThisExecutable) {
    char name[256];
    ASSERT_TRUE(program_name(name, sizeof name));
    EXPECT_STREQ(name, "config_unit_test");
    char tiny[4];
    EXPECT_FALSE(program_name(tiny, sizeof tiny));
}

TEST(Print, OneLinePerKnobWithItsOrigin) {
    Conf r;
    r.parse("partitions = 8\n\nasync = off\n", "/etc/x.conf");
    Env env{"BTM_MESH=on"};
    apply_environment(env.get(), r.opt, &r.v, &r.o);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    print(r.v, r.o, fds[1]);
    close(fds[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
    close(fds[0]);
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), long(kKnobCount));
    BTM_EXPECT_CONTAINS(out, "btmalloc: enabled = on (default)\n");
    BTM_EXPECT_CONTAINS(out, "btmalloc: partitions = 8 (/etc/x.conf:1)\n");
    BTM_EXPECT_CONTAINS(out, "btmalloc: async = off (/etc/x.conf:3)\n");
    BTM_EXPECT_CONTAINS(out, "btmalloc: mesh = on (environment)\n");
    BTM_EXPECT_CONTAINS(out, "btmalloc: reserve = 64g (default)\n");
    BTM_EXPECT_CONTAINS(out, "btmalloc: pageout = on (default)\n");
}

}  // namespace
}  // namespace btm::config::test
