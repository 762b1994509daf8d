// `btmctl enable --system` first runs a few programs with the library
// preloaded, each in its own child, and each once more without it: a
// library that cannot be loaded, or that crashes or prints in them, would
// do the same in every process on the machine once it is in
// /etc/ld.so.preload.  The run without it tells the library's faults from
// the machine's own (a broken /etc/ld.so.preload makes every program print).
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "enablement.h"
#include "files.h"

namespace btmctl {
namespace {

struct Trial {
    std::vector<std::string> argv;
    std::string expected_stdout;  // compared when not empty
    std::vector<std::string> env = {};  // beyond the fixed ones
    // A set-user-ID program run by nobody: the loader ignores LD_PRELOAD in
    // it, so the library goes into a private /etc/ld.so.preload instead.
    bool secure = false;
    std::string name = {};  // in the list of passed trials, if not argv[0]
};

constexpr int kTimeLimitSeconds = 30;
constexpr uid_t kNobody = 65534;

constexpr const char* kThreads =
    "import threading\n"
    "out = []\n"
    "def work():\n"
    "    out.append(sum(len(str(i)) for i in range(30000)))\n"
    "ts = [threading.Thread(target=work) for _ in range(4)]\n"
    "[t.start() for t in ts]\n"
    "[t.join() for t in ts]\n"
    "print(sum(out))\n";

bool is_setuid_root(const char* path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 && (st.st_mode & S_ISUID);
}

std::vector<Trial> trials(std::vector<std::string>* notes) {
    std::vector<Trial> out = {
        {{"/bin/true"}, ""},
        {{"/bin/sh", "-c", "echo ok"}, "ok\n"},
        {{"/bin/ls", "-d", "/"}, "/\n"},
    };
    if (access("/usr/bin/python3", X_OK) == 0) {
        out.push_back({{"/usr/bin/python3", "-c", "print(sum(len(str(i)) for i in range(100000)))"}, "488890\n"});
        // Threads, with every Python object from malloc.
        out.push_back({{"/usr/bin/python3", "-c", kThreads}, "555560\n", {"PYTHONMALLOC=malloc"}, false,
                       "python3-threads"});
    } else {
        notes->push_back("no threaded trial: /usr/bin/python3 is not installed");
    }
    if (access("/usr/bin/perl", X_OK) == 0)
        out.push_back({{"/usr/bin/perl", "-e", "my %h = map { $_ => 1 } 1..10000; print scalar(keys %h), qq(\\n)"},
                       "10000\n"});
    // The package manager: a library that breaks it is hard to remove.
    if (access("/usr/bin/apt-get", X_OK) == 0) out.push_back({{"/usr/bin/apt-get", "--version"}, ""});
    if (access("/usr/bin/dpkg-query", X_OK) == 0) out.push_back({{"/usr/bin/dpkg-query", "-W"}, ""});
    if (access("/usr/bin/rpm", X_OK) == 0) out.push_back({{"/usr/bin/rpm", "-qa"}, ""});
    if (geteuid() != 0) {
        notes->push_back("no set-user-ID trial: it needs root");
    } else {
        const char* setuid_program = nullptr;
        for (const char* p : {"/usr/bin/su", "/bin/su", "/usr/bin/mount", "/bin/mount"})
            if (!setuid_program && is_setuid_root(p)) setuid_program = p;
        if (setuid_program)
            out.push_back({{setuid_program, "--version"}, "", {}, true, "set-user-ID " + std::string(setuid_program)});
        else notes->push_back("no set-user-ID trial: neither su nor mount is set-user-ID root here");
    }
    return out;
}

std::string quote_command(const std::vector<std::string>& argv) {
    std::string out;
    for (const std::string& a : argv) {
        if (!out.empty()) out += ' ';
        bool plain = a.find_first_of(" \t\n\"'\\$") == std::string::npos;
        out += plain ? a : "'" + a + "'";
    }
    return out;
}

std::string read_back(int fd) {
    std::string out;
    lseek(fd, 0, SEEK_SET);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 && out.size() < 65536) out.append(buf, size_t(n));
    return out;
}

int temp_fd() {
    char name[] = "/tmp/btmctl-trial-XXXXXX";
    int fd = mkostemp(name, O_CLOEXEC);
    if (fd >= 0) unlink(name);
    return fd;
}

// In the child of a secure trial: a private /etc whose ld.so.preload lists
// only LIBRARY (or nothing), over a tmpfs mounted on SCRATCH, so the real
// /etc is never written.  Returns false if the kernel refuses.
bool private_preload(const char* scratch, const char* library) {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
    if (mount("tmpfs", scratch, "tmpfs", 0, "size=1m,mode=0755") != 0) return false;
    std::string upper = std::string(scratch) + "/upper", work = std::string(scratch) + "/work";
    if (mkdir(upper.c_str(), 0755) != 0 || mkdir(work.c_str(), 0755) != 0) return false;
    std::string options = "lowerdir=/etc,upperdir=" + upper + ",workdir=" + work;
    if (mount("overlay", "/etc", "overlay", 0, options.c_str()) != 0) return false;
    // Unlinked first: a symbolic link there must not lead the write outside.
    if (unlink("/etc/ld.so.preload") != 0 && errno != ENOENT) return false;
    if (!library) return true;
    int fd = open("/etc/ld.so.preload", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    std::string line = std::string(library) + "\n";
    bool ok = write(fd, line.data(), line.size()) == ssize_t(line.size());
    return close(fd) == 0 && ok;
}

struct Outcome {
    std::string error;  // could not run it at all
    bool timed_out = false;
    int status = 0;
    std::string out, err;
};

// Runs TRIAL, with LIBRARY preloaded unless it is null.
Outcome run(const Trial& trial, const char* library) {
    Outcome o;
    int out = temp_fd(), err = temp_fd();
    char scratch[] = "/tmp/btmctl-trial-etc-XXXXXX";
    if (out < 0 || err < 0 || (trial.secure && !mkdtemp(scratch))) {
        o.error = std::string("cannot create a temporary file: ") + std::strerror(errno);
        if (out >= 0) close(out);
        if (err >= 0) close(err);
        return o;
    }
    std::vector<std::string> env_strings = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                            "LC_ALL=C", "HOME=/"};
    if (library && !trial.secure) env_strings.push_back(std::string("LD_PRELOAD=") + library);
    env_strings.insert(env_strings.end(), trial.env.begin(), trial.env.end());
    std::vector<char*> envp, argv;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = trial.argv;
    for (std::string& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);

    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);  // its own group, killed as one on timeout
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(126);
        if (trial.secure) {
            if (!private_preload(scratch, library)) {
                dprintf(2, "btmctl: cannot set up a private /etc/ld.so.preload: %s\n", std::strerror(errno));
                _exit(125);
            }
            if (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0) _exit(125);
        }
        execve(argv[0], argv.data(), envp.data());
        dprintf(2, "btmctl: cannot start %s: %s\n", argv[0], std::strerror(errno));
        _exit(127);
    }
    if (pid < 0) {
        o.error = std::string("cannot start it: ") + std::strerror(errno);
    } else {
        setpgid(pid, pid);
        for (int waited_ms = 0;; waited_ms += 10) {
            pid_t w = waitpid(pid, &o.status, WNOHANG);
            if (w == pid || (w < 0 && errno != EINTR)) break;
            if (waited_ms >= kTimeLimitSeconds * 1000) {
                o.timed_out = true;
                kill(-pid, SIGKILL);
                waitpid(pid, &o.status, 0);
                break;
            }
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, nullptr);
        }
        o.out = read_back(out);
        o.err = read_back(err);
    }
    close(out);
    close(err);
    if (trial.secure) rmdir(scratch);
    return o;
}

std::string describe_status(const Outcome& o) {
    if (o.timed_out) return "did not finish within " + std::to_string(kTimeLimitSeconds) + " s";
    if (WIFSIGNALED(o.status))
        return "was killed by signal " + std::to_string(WTERMSIG(o.status)) + " (" + strsignal(WTERMSIG(o.status)) + ")";
    return "exited with status " + std::to_string(WEXITSTATUS(o.status));
}

std::string with_stderr(std::string why, std::string err) {
    if (err.empty()) return why;
    if (err.size() > 2000) err = err.substr(0, 2000) + "...";
    return why + "; its stderr:\n" + err;
}

// "" if WITH (the library preloaded) is as good as BASE (without it), else why not.
std::string judge(const Trial& trial, const Outcome& with, const Outcome& base) {
    std::string why;
    if (with.timed_out || with.status != base.status) why = describe_status(with);
    else if (!with.err.empty() && with.err != base.err) why = "wrote to stderr";
    else if (!trial.expected_stdout.empty() && with.out != trial.expected_stdout)
        why = "printed '" + with.out + "', not '" + trial.expected_stdout + "'";
    else if (with.out != base.out) why = "printed other output than without the library";
    return why.empty() ? why : with_stderr(why, with.err);
}

bool clean(const Trial& trial, const Outcome& o) {
    return !o.timed_out && WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0 && o.err.empty() &&
           (trial.expected_stdout.empty() || o.out == trial.expected_stdout);
}

std::string label(const Trial& t, const std::string& library) {
    // append() rather than "literal" + std::string&&, which GCC 12 warns
    // about (-Wrestrict, a false positive).
    std::string out = t.secure ? "'set-user-ID " : "'";
    out.append(quote_command(t.argv));
    if (t.secure) return out.append(", run by nobody, with /etc/ld.so.preload listing ").append(library).append("'");
    return out.append("' with LD_PRELOAD=").append(library);
}

}  // namespace

std::string trial_runs(const std::string& library, std::vector<std::string>* passed,
                       std::vector<std::string>* notes) {
    for (const Trial& t : trials(notes)) {
        Outcome base = run(t, nullptr);
        if (t.secure && WIFEXITED(base.status) && WEXITSTATUS(base.status) == 125) {
            notes->push_back("no set-user-ID trial: " + (base.err.empty() ? "cannot drop to nobody" : base.err));
            continue;
        }
        Outcome with = run(t, library.c_str());
        if (!with.error.empty()) return label(t, library) + ": " + with.error;
        std::string why = judge(t, with, base);
        bool base_clean = base.error.empty() && clean(t, base);
        if (!why.empty()) {
            std::string failure = label(t, library) + " " + why;
            if (!base_clean)
                failure += "\n(without the library it " +
                           with_stderr(base.error.empty() ? describe_status(base) : base.error, base.err) + ")";
            return failure;
        }
        if (!base_clean)
            notes->push_back(with_stderr(std::string("'")
                                             .append(quote_command(t.argv))
                                             .append("' ")
                                             .append(base.err.empty() ? describe_status(base) : "wrote to stderr")
                                             .append(" without ")
                                             .append(library)
                                             .append(" as well"),
                                         base.err));
        passed->push_back(t.name.empty() ? t.argv[0] : t.name);
    }
    return {};
}

}  // namespace btmctl
