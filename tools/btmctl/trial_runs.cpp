// `btmctl enable --system` first runs a few ordinary programs with the
// library preloaded, each in its own child: a library that cannot be loaded,
// or that crashes or prints in them, would do the same in every process on
// the machine once it is in /etc/ld.so.preload.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
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
};

constexpr int kTimeLimitSeconds = 30;

std::vector<Trial> trials() {
    std::vector<Trial> out = {
        {{"/bin/true"}, ""},
        {{"/bin/sh", "-c", "echo ok"}, "ok\n"},
        {{"/bin/ls", "-d", "/"}, "/\n"},
    };
    if (access("/usr/bin/python3", X_OK) == 0)
        out.push_back({{"/usr/bin/python3", "-c", "print(sum(len(str(i)) for i in range(100000)))"}, "488890\n"});
    if (access("/usr/bin/perl", X_OK) == 0)
        out.push_back({{"/usr/bin/perl", "-e", "my %h = map { $_ => 1 } 1..10000; print scalar(keys %h), qq(\\n)"},
                       "10000\n"});
    return out;
}

std::string quote_command(const std::vector<std::string>& argv) {
    std::string out;
    for (const std::string& a : argv) {
        if (!out.empty()) out += ' ';
        bool plain = a.find_first_of(" \t\"'\\$") == std::string::npos;
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

// Runs one trial; returns "" or what went wrong.
std::string run_one(const Trial& trial, const std::string& library) {
    int out = temp_fd(), err = temp_fd();
    if (out < 0 || err < 0) {
        if (out >= 0) close(out);
        if (err >= 0) close(err);
        return std::string("cannot create a temporary file: ") + std::strerror(errno);
    }
    std::vector<std::string> env_strings = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/",
        "LD_PRELOAD=" + library};
    std::vector<char*> envp, argv;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = trial.argv;
    for (std::string& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out, 1);
    posix_spawn_file_actions_adddup2(&actions, err, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its own group, killed as one on timeout
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        close(out);
        close(err);
        return std::string("cannot start it: ") + std::strerror(rc);
    }

    int status = 0;
    bool timed_out = false;
    for (int waited_ms = 0;; waited_ms += 10) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) break;
        if (waited_ms >= kTimeLimitSeconds * 1000) {
            timed_out = true;
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, nullptr);
    }
    std::string stdout_text = read_back(out), stderr_text = read_back(err);
    close(out);
    close(err);

    std::string why;
    if (timed_out) why = "did not finish within " + std::to_string(kTimeLimitSeconds) + " s";
    else if (WIFSIGNALED(status)) why = "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    else if (WEXITSTATUS(status) != 0) why = "exited with status " + std::to_string(WEXITSTATUS(status));
    else if (!stderr_text.empty()) why = "wrote to stderr";
    else if (!trial.expected_stdout.empty() && stdout_text != trial.expected_stdout)
        why = "printed '" + stdout_text + "', not '" + trial.expected_stdout + "'";
    if (why.empty()) return {};
    if (!stderr_text.empty()) {
        if (stderr_text.size() > 2000) stderr_text = stderr_text.substr(0, 2000) + "...";
        why += "; its stderr:\n" + stderr_text;
    }
    return why;
}

}  // namespace

std::string trial_runs(const std::string& library, std::vector<std::string>* passed) {
    for (const Trial& t : trials()) {
        std::string why = run_one(t, library);
        if (!why.empty()) {
            std::string failure = "'";
            failure.append(quote_command(t.argv)).append("' with LD_PRELOAD=").append(library);
            return failure.append(" ").append(why);
        }
        passed->push_back(t.argv[0]);
    }
    return {};
}

}  // namespace btmctl
