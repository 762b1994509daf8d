// btm-pageout: asks processes running with btmalloc to page out cold slabs
// (DESIGN-NOTES §5).  Finds candidates (--pid, --unit through libsystemd,
// --all), keeps only those that map libbtmalloc and catch the pageout signal
// (anything else would be killed by the signal's default action), optionally
// only the idle ones, then queues the signal through a pidfd so a reused PID
// is never hit, and reports RSS and swap before and after.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-login.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core.h"

namespace {

using namespace btm_pageout;

bool read_file(const std::string& path, std::string* out) {
    std::ifstream f(path);
    if (!f) return false;
    std::stringstream ss;
    ss << f.rdbuf();
    *out = ss.str();
    return true;
}

// "VmRSS:     1234 kB" -> bytes; SigCgt hex mask.
struct Status {
    std::string name;
    uint64_t rss = 0, swap = 0;
    uint64_t sigcgt = 0;
    bool kernel_thread = false;
};

bool read_status(pid_t pid, Status* st) {
    std::string text;
    if (!read_file("/proc/" + std::to_string(pid) + "/status", &text)) return false;
    std::istringstream in(text);
    std::string line;
    bool have_vm = false;
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string key = line.substr(0, colon), val = line.substr(colon + 1);
        val.erase(0, val.find_first_not_of(" \t"));
        if (key == "Name") st->name = val;
        else if (key == "VmRSS") st->rss = std::strtoull(val.c_str(), nullptr, 10) * 1024, have_vm = true;
        else if (key == "VmSwap") st->swap = std::strtoull(val.c_str(), nullptr, 10) * 1024;
        else if (key == "SigCgt") st->sigcgt = std::strtoull(val.c_str(), nullptr, 16);
    }
    st->kernel_thread = !have_vm;
    return true;
}

// utime + stime in clock ticks, from /proc/PID/stat (fields 14 and 15).
bool read_cpu(pid_t pid, uint64_t* ticks) {
    std::string text;
    if (!read_file("/proc/" + std::to_string(pid) + "/stat", &text)) return false;
    auto close = text.rfind(')');
    if (close == std::string::npos) return false;
    std::istringstream in(text.substr(close + 2));
    std::string f;
    uint64_t ut = 0, stime = 0;
    for (int field = 3; field <= 15 && in >> f; ++field) {
        if (field == 14) ut = std::strtoull(f.c_str(), nullptr, 10);
        if (field == 15) stime = std::strtoull(f.c_str(), nullptr, 10);
    }
    *ticks = ut + stime;
    return true;
}

// Does /proc/PID/maps map a file whose name contains "libbtmalloc"?
// -1 if maps cannot be read.
int maps_btmalloc(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/maps");
    if (!f) return -1;
    std::string line;
    bool any = false;
    while (std::getline(f, line)) {
        any = true;
        auto slash = line.find('/');
        if (slash != std::string::npos && line.find("libbtmalloc", slash) != std::string::npos) return 1;
    }
    return any ? 0 : -1;
}

bool machine_has_swap() {
    std::string text;
    if (!read_file("/proc/swaps", &text)) return false;
    return std::count(text.begin(), text.end(), '\n') > 1;
}

std::string unit_of(pid_t pid) {
    char* unit = nullptr;
    if (sd_pid_get_unit(pid, &unit) < 0 || !unit) return {};
    std::string u(unit);
    std::free(unit);
    return u;
}

// Every process under a cgroup v2 directory, recursively.
void cgroup_procs(const std::string& dir, std::vector<pid_t>* out) {
    std::ifstream f(dir + "/cgroup.procs");
    pid_t p;
    while (f >> p) out->push_back(p);
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d))
            if (e->d_type == DT_DIR && e->d_name[0] != '.') cgroup_procs(dir + "/" + e->d_name, out);
        closedir(d);
    }
}

// A unit's processes through its ControlGroup property (systemd over D-Bus).
bool unit_procs(const std::string& unit, std::vector<pid_t>* out, std::string* error) {
    sd_bus* bus = nullptr;
    int r = sd_bus_open_system(&bus);
    if (r < 0) {
        *error = std::string("cannot connect to the system bus: ") + std::strerror(-r);
        return false;
    }
    std::unique_ptr<sd_bus, sd_bus*(*)(sd_bus*)> guard(bus, sd_bus_flush_close_unref);
    char* path = nullptr;
    r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &path);
    if (r < 0) {
        *error = std::strerror(-r);
        return false;
    }
    std::unique_ptr<char, void (*)(void*)> path_guard(path, std::free);
    sd_bus_error err = SD_BUS_ERROR_NULL;
    char* cg = nullptr;
    const char* iface = unit.ends_with(".service") ? "org.freedesktop.systemd1.Service"
                        : unit.ends_with(".scope") ? "org.freedesktop.systemd1.Scope"
                        : unit.ends_with(".slice") ? "org.freedesktop.systemd1.Slice"
                        : nullptr;
    if (!iface) {
        *error = "only services, scopes and slices have processes";
        return false;
    }
    r = sd_bus_get_property_string(bus, "org.freedesktop.systemd1", path, iface, "ControlGroup", &err, &cg);
    if (r < 0) {
        *error = err.message ? err.message : std::strerror(-r);
        sd_bus_error_free(&err);
        return false;
    }
    sd_bus_error_free(&err);
    std::string group = cg ? cg : "";
    std::free(cg);
    if (group.empty()) return true;  // not running
    cgroup_procs("/sys/fs/cgroup" + group, out);
    return true;
}

std::vector<pid_t> all_pids() {
    std::vector<pid_t> out;
    if (DIR* d = opendir("/proc")) {
        while (dirent* e = readdir(d)) {
            char* end;
            long p = std::strtol(e->d_name, &end, 10);
            if (*end == 0 && p > 0) out.push_back(pid_t(p));
        }
        closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

int default_signal(std::string* where) {
    using namespace btm::config;
    btm::config::Values v;
    btm::config::Origin o;
    btm::config::Options opt;
    opt.program = "btm-pageout";
    set_defaults(&v, &o);
    load_files(nullptr, opt, &v, &o);  // /etc/btmalloc.conf and its drop-ins, not BTM_CONF
    if (const char* e = std::getenv("BTM_PAGEOUT_SIGNAL")) {
        auto s = parse_signal(e);
        if (s) {
            *where = "BTM_PAGEOUT_SIGNAL";
            return *s;
        }
    }
    *where = kSystemFile;
    return int(v.pageout_signal);
}

int pidfd_open_(pid_t pid) { return int(syscall(SYS_pidfd_open, pid, 0)); }

int send(int pidfd, int sig, unsigned min_age) {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    info.si_signo = sig;
    info.si_code = SI_QUEUE;
    info.si_pid = getpid();
    info.si_uid = getuid();
    info.si_value.sival_int = int(min_age);
    return int(syscall(SYS_pidfd_send_signal, pidfd, sig, &info, 0));
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    std::string error;
    if (!parse_args(argc, argv, &o, &error)) {
        std::fprintf(stderr, "btm-pageout: %s\nTry 'btm-pageout --help'.\n", error.c_str());
        return kExitUsage;
    }
    if (o.help) {
        std::fputs(kUsage, stdout);
        return kExitOk;
    }
    if (o.signal == 0) {
        std::string where;
        o.signal = default_signal(&where);
        if (o.signal == 0) {
            std::fprintf(stderr,
                         "btm-pageout: no pageout signal: set pageout_signal in %s (e.g. RTMIN+3) "
                         "or give --signal\nTry 'btm-pageout --help'.\n",
                         btm::config::kSystemFile);
            return kExitUsage;
        }
    }

    // Candidates, each with its unit when known.
    std::vector<std::pair<pid_t, std::string>> cands;
    std::set<pid_t> seen;
    int status = kExitOk;
    pid_t self = getpid();
    for (pid_t p : o.pids)
        if (seen.insert(p).second) cands.push_back({p, unit_of(p)});
    for (const std::string& u : o.units) {
        std::vector<pid_t> procs;
        if (!unit_procs(u, &procs, &error)) {
            std::fprintf(stderr, "btm-pageout: %s: %s\n", u.c_str(), error.c_str());
            status = kExitNothing;
            continue;
        }
        for (pid_t p : procs)
            if (seen.insert(p).second) {
                std::string lbl = unit_of(p);
                cands.push_back({p, lbl.empty() ? u : lbl});
            }
    }
    if (o.all)
        for (pid_t p : all_pids())
            if (p != self) cands.push_back({p, unit_of(p)});

    Report rep;
    rep.signal = o.signal;
    rep.min_age = o.min_age;
    rep.dry_run = o.dry_run;
    rep.no_swap = !machine_has_swap();
    const uint64_t bit = uint64_t(1) << (o.signal - 1);

    // Eligibility.
    std::vector<size_t> targets;
    for (auto& [pid, unit] : cands) {
        Entry e;
        e.pid = pid;
        e.unit = unit;
        Status st;
        if (!read_status(pid, &st)) {
            e.reason = "no such process";
            if (o.all) continue;  // raced with its exit: not worth a line
        } else {
            e.comm = st.name;
            e.rss_before = st.rss, e.swap_before = st.swap;
            if (st.kernel_thread) {
                e.reason = "kernel thread";
                if (o.all) continue;
            } else if (int m = maps_btmalloc(pid); m < 0) {
                e.reason = "cannot read its memory map (another user's process?)";
            } else if (m == 0) {
                e.reason = "does not run with btmalloc";
            } else if (!(st.sigcgt & bit)) {
                e.reason = "does not catch " + signal_name(o.signal) +
                           " (pageout_signal not set for it, or the program uses the signal); "
                           "the signal would kill it";
            } else if (st.rss < o.min_rss) {
                e.reason = "resident memory under --min-rss";
            } else {
                e.target = true;
            }
        }
        // --all: only processes running with btmalloc are worth a line.
        if (o.all && !e.target &&
            (e.reason.starts_with("does not run") || e.reason.starts_with("cannot read")))
            continue;
        rep.entries.push_back(e);
        if (rep.entries.back().target) targets.push_back(rep.entries.size() - 1);
    }

    // Idle selection: sample, wait, sample.
    if (o.idle_for && !targets.empty()) {
        std::vector<CpuSample> s(targets.size());
        for (size_t i = 0; i < targets.size(); ++i)
            s[i].gone = !read_cpu(rep.entries[targets[i]].pid, &s[i].start_ticks);
        std::this_thread::sleep_for(std::chrono::duration<double>(*o.idle_for));
        long hz = sysconf(_SC_CLK_TCK);
        std::vector<std::string> groups;
        for (size_t i = 0; i < targets.size(); ++i) {
            Entry& e = rep.entries[targets[i]];
            if (!s[i].gone) s[i].gone = !read_cpu(e.pid, &s[i].end_ticks);
            groups.push_back(e.unit);
        }
        // The processes of one unit are idle or busy together.
        std::vector<bool> idle = idle_by_group(s, groups, *o.idle_for, o.idle_threshold, hz);
        std::vector<size_t> kept;
        for (size_t i = 0; i < targets.size(); ++i) {
            Entry& e = rep.entries[targets[i]];
            if (idle[i]) {
                kept.push_back(targets[i]);
            } else {
                e.target = false;
                e.reason = s[i].gone          ? "exited"
                           : e.unit.empty() ? "not idle (CPU time grew during the window)"
                                            : "not idle (its unit's CPU time grew during the window)";
            }
        }
        targets = kept;
    }

    // Signal.
    if (!o.dry_run) {
        bool any = false;
        for (size_t i : targets) {
            Entry& e = rep.entries[i];
            int fd = pidfd_open_(e.pid);
            if (fd < 0) {
                e.reason = std::string("pidfd_open: ") + std::strerror(errno);
                continue;
            }
            // The pidfd pins this process: check again that it is the one we
            // looked at (a PID reused between the checks and pidfd_open).
            Status st;
            if (!read_status(e.pid, &st) || !(st.sigcgt & bit) || maps_btmalloc(e.pid) != 1) {
                e.reason = "changed before it could be signalled";
            } else if (send(fd, o.signal, o.min_age) < 0) {
                e.reason = std::string("pidfd_send_signal: ") + std::strerror(errno);
            } else {
                e.ok = true;
                any = true;
            }
            close(fd);
        }
        if (any && o.wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(o.wait));
        for (size_t i : targets) {
            Entry& e = rep.entries[i];
            Status st;
            if (e.ok && read_status(e.pid, &st)) {
                e.rss_after = st.rss, e.swap_after = st.swap;
                e.have_after = true;
            }
        }
    }

    std::string out = o.json ? format_json(rep) : format_text(rep);
    std::fputs(out.c_str(), stdout);
    int st = exit_status(rep);
    return st != kExitOk ? st : status;
}
