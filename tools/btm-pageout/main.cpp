// btm-pageout: pages out the cold slabs and large blocks of processes
// running with btmalloc, from outside them (DESIGN.md §8).  Finds
// candidates (--pid, --unit through libsystemd, --all), keeps those whose
// mapped library exports btmalloc's introspection descriptor and accept
// pageout, optionally only the idle ones; then, holding a pidfd, reads the heap tables (tools/common), checks
// the process is still the one it read, hands the cold ranges to
// process_madvise(MADV_PAGEOUT) and reports RSS and swap before and after.
// No signal is sent to anyone.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/uio.h>
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

#include "core.h"
#include "heap_reader.h"

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

// "VmRSS:     1234 kB" -> bytes.
struct Status {
    std::string name;
    uint64_t rss = 0, swap = 0;
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

int pidfd_open_(pid_t pid) { return int(syscall(SYS_pidfd_open, pid, 0)); }

// A pidfd polls readable once its process has exited.
bool still_alive(int pidfd) {
    pollfd p{pidfd, POLLIN, 0};
    return poll(&p, 1, 0) == 0;
}

std::string madvise_error(int e) {
    switch (e) {
        case EPERM: return "EPERM: process_madvise needs root or CAP_SYS_NICE";
        case ENOSYS: return "the kernel lacks process_madvise (Linux 5.10 or later)";
        case EINVAL: return "the kernel refused MADV_PAGEOUT for its heap (EINVAL: Linux 5.4 or later, no mlock)";
        case ESRCH: return "exited during the pageout";
        default: return std::string("process_madvise: ") + std::strerror(e);
    }
}

// Hands the ranges to the kernel, IOV_MAX at a time; the bytes it took, or
// -1 with errno.
long long page_out(int pidfd, const std::vector<btm_heap::Range>& ranges) {
    long long total = 0;
    std::vector<iovec> iov;
    for (size_t i = 0; i < ranges.size();) {
        iov.clear();
        for (; i < ranges.size() && iov.size() < IOV_MAX; ++i)
            iov.push_back({reinterpret_cast<void*>(ranges[i].addr), size_t(ranges[i].len)});
        long r = syscall(SYS_process_madvise, pidfd, iov.data(), iov.size(), MADV_PAGEOUT, 0u);
        if (r < 0) return -1;
        total += r;
    }
    return total;
}

// A btmalloc process found by its descriptor, with the pidfd that pins it.
struct Target {
    int pidfd = -1;
    btm_heap::Located loc;
};

// Pages one process out; fills e.ok/e.paged_bytes or e.reason.
void page_out_one(const Options& o, Entry& e, Target& t) {
    std::vector<btm_heap::Range> ranges;
    std::string why;
    if (!btm_heap::reread(e.pid, &t.loc) || !btm_heap::cold_ranges(e.pid, t.loc, o.min_age, &ranges, &why)) {
        bool alive = still_alive(t.pidfd);
        e.reason = alive ? (why.empty() ? "its descriptor went away" : why) : "exited during the read";
        e.target = alive;  // a failure to report, unless the process simply exited
        return;
    }
    // Everything read above came from the process the pidfd pins only if it
    // is still alive now: a PID reused after an exit would have been read
    // instead.
    if (!still_alive(t.pidfd)) {
        e.reason = "exited during the read";
        e.target = false;
        return;
    }
    for (const auto& r : ranges) e.paged_bytes += r.len;
    if (o.dry_run) return;
    long long took = ranges.empty() ? 0 : page_out(t.pidfd, ranges);
    if (took < 0) {
        e.reason = madvise_error(errno);
        return;
    }
    e.ok = true;
    e.paged_bytes = uint64_t(took);
    if (still_alive(t.pidfd)) btm_heap::record_pageout(e.pid, t.loc, uint64_t(took));
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
    if (o.obsolete_signal)
        std::fprintf(stderr, "btm-pageout: --signal is obsolete and ignored: no signal is sent any more\n");

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
    rep.min_age = o.min_age;
    rep.dry_run = o.dry_run;
    rep.no_swap = !machine_has_swap();

    // Eligibility.  The pidfd comes first: everything read after it is
    // checked against it before anything is done to the process.
    std::vector<size_t> targets;
    std::map<size_t, Target> held;
    for (auto& [pid, unit] : cands) {
        Entry e;
        e.pid = pid;
        e.unit = unit;
        Status st;
        Target t;
        bool quiet = false;  // --all: only processes running with btmalloc are worth a line
        t.pidfd = pidfd_open_(pid);
        if (t.pidfd < 0 || !read_status(pid, &st)) {
            e.reason = "no such process";
            quiet = o.all;  // raced with its exit
        } else {
            e.comm = st.name;
            e.rss_before = st.rss, e.swap_before = st.swap;
            std::string why;
            if (st.kernel_thread) {
                e.reason = "kernel thread";
                quiet = o.all;
            } else {
                switch (btm_heap::locate(pid, &t.loc, &why)) {
                    case btm_heap::Found::kYes:
                        if (!t.loc.d.accepts_pageout) e.reason = "refuses pageout by configuration (pageout = off)";
                        else if (!t.loc.d.ready && !t.loc.large) e.reason = "no heap yet: nothing to page out";
                        else if (st.rss < o.min_rss) e.reason = "resident memory below --min-rss";
                        else e.target = true;
                        break;
                    case btm_heap::Found::kNotBtmalloc:
                        e.reason = why.empty() ? "does not run with btmalloc" : why;
                        quiet = o.all && why.empty();
                        break;
                    case btm_heap::Found::kGone:
                        e.reason = "exited before it could be read";
                        quiet = o.all;
                        break;
                    case btm_heap::Found::kNoAccess:
                        e.reason = why;
                        quiet = o.all;
                        break;
                    case btm_heap::Found::kTooOld:
                    case btm_heap::Found::kUnknownVersion:
                        e.reason = why;
                        break;
                }
            }
        }
        if (!e.target && t.pidfd >= 0) close(t.pidfd);
        if (quiet) continue;
        rep.entries.push_back(e);
        if (e.target) {
            targets.push_back(rep.entries.size() - 1);
            held[rep.entries.size() - 1] = t;
        }
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
            if (!s[i].gone) s[i].gone = !read_cpu(e.pid, &s[i].end_ticks) || !still_alive(held[targets[i]].pidfd);
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
                e.reason = s[i].gone          ? "exited during the idle window"
                           : e.unit.empty() ? "not idle (CPU time grew during the window)"
                                            : "not idle (its unit's CPU time grew during the window)";
            }
        }
        targets = kept;
    }

    bool any = false;
    for (size_t i : targets) {
        page_out_one(o, rep.entries[i], held[i]);
        any = any || rep.entries[i].ok;
    }
    if (any && o.wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(o.wait));
    for (size_t i : targets) {
        Entry& e = rep.entries[i];
        Status st;
        if (!e.ok) continue;
        // A process that exited since is gone, whatever read_status finds
        // under its PID now.
        if (!still_alive(held[i].pidfd) || !read_status(e.pid, &st)) {
            e.gone = true;
            continue;
        }
        e.rss_after = st.rss, e.swap_after = st.swap;
        e.have_after = true;
    }
    for (auto& [i, t] : held) close(t.pidfd);

    std::string out = o.json ? format_json(rep) : format_text(rep);
    std::fputs(out.c_str(), stdout);
    int st = exit_status(rep);
    return st != kExitOk ? st : status;
}
