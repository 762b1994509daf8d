// `btmctl heap PID|UNIT`: the live bytes of each call site of running
// btmalloc processes, read from outside (tools/common/site_profile.h) and
// named with libdwfl.  Reads only: the process is never stopped.
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "command.h"
#include "core.h"
#include "heap_format.h"
#include "heap_summary.h"
#include "site_profile.h"
#include "units.h"

namespace btmctl {

const std::string_view kHeapUsage =
    "  btmctl heap PID|UNIT [--json|--folded] [--top N] [--diff DURATION | --watch [--interval DURATION]]\n"
    "  btmctl heap --symbolize FILE     names the sites of a saved malloc_stats() report\n"
    "                                   live bytes and blocks per call site of running\n"
    "                                   processes, read from outside without stopping them;\n"
    "                                   --diff: the sites that grew over DURATION, fastest first\n";

namespace {

struct Options {
    enum class Format { kTable, kJson, kFolded } format = Format::kTable;
    size_t top = 30;
    std::string target;
    double diff = 0;         // seconds between the two samples; 0 = one sample
    bool watch = false;
    double interval = 2;     // of --watch
    std::string report;      // --symbolize FILE
};

volatile sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

// Sleeps `seconds` unless interrupted (--watch ends on Ctrl-C).
void pause_for(double seconds) {
    timespec t{time_t(seconds), long((seconds - double(time_t(seconds))) * 1e9)};
    while (!g_interrupted && nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

// The processes of a unit: every PID systemd places in it.
std::vector<pid_t> unit_pids(const std::string& unit) {
    std::vector<pid_t> out;
    for (pid_t pid : all_pids())
        if (unit_of(pid) == unit) out.push_back(pid);
    return out;
}

}  // namespace

namespace heap {

bool snapshot(pid_t pid, Snapshot* s, std::string* reason) {
    btm_heap::Located loc;
    std::string why;
    auto start = std::chrono::steady_clock::now();
    btm_heap::Found f = btm_heap::locate(pid, &loc, &why);
    if (f == btm_heap::Found::kGone) why = "exited before it could be read";
    else if (f == btm_heap::Found::kNotBtmalloc && why.empty()) why = "does not run on btmalloc";
    std::vector<btm_heap::SiteUsage> usage;
    bool gone = false;
    if (f != btm_heap::Found::kYes || !btm_heap::read_sites(pid, loc, &usage, &why, &gone)) {
        *reason = "process " + std::to_string(pid) + ": " + why;
        return false;
    }
    auto end = std::chrono::steady_clock::now();
    s->read_ms = std::chrono::duration<double, std::milli>(end - start).count();
    s->read_at = std::chrono::duration<double>(end.time_since_epoch()).count();
    s->pid = pid;
    s->comm = comm_of(pid);
    s->unit = unit_of(pid);
    btm_heap::Symbolizer names(pid);
    std::vector<btm_heap::Mapping> maps;
    int err = 0;
    btm_heap::parse_maps(pid, &maps, &err);
    for (const btm_heap::SiteUsage& u : usage) {
        Site x;
        x.address = u.site;
        x.partition = u.partition;
        x.shared = u.shared;
        x.bytes = u.bytes;
        x.blocks = u.blocks;
        x.name = names.name(u.site);
        if (x.name.module.empty()) {  // libdwfl could not open it: at least module+0xoff
            btm_heap::ModuleOffset m = btm_heap::module_of(maps, u.site);
            x.name.module = m.path.substr(m.path.rfind('/') + 1);
            x.name.module_offset = m.path.empty() ? u.site : m.offset;
        }
        s->sites.push_back(std::move(x));
    }
    std::stable_sort(s->sites.begin(), s->sites.end(),
                     [](const Site& a, const Site& b) { return a.bytes > b.bytes; });
    return true;
}

}  // namespace heap

namespace {

// One process's snapshot; false with the reason printed (gone or refused).
bool snapshot(pid_t pid, heap::Snapshot* s) {
    std::string why;
    if (heap::snapshot(pid, s, &why)) return true;
    std::cerr << "btmctl: heap: " << why << '\n';
    return false;
}

int parse(Args args, Options* o) {
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a == "--symbolize") {
            if (i + 1 >= args.size() || !*args[i + 1]) return usage_error("heap: --symbolize needs a file");
            o->report = args[++i];
        } else if (a == "--diff" || a == "--interval") {
            if (i + 1 >= args.size()) return usage_error("heap: " + std::string(a) + " needs a duration (60s, 2m)");
            std::optional<double> d = btm_pageout::parse_duration(args[++i]);
            if (!d) return usage_error("heap: " + std::string(a) + ": bad duration '" + std::string(args[i]) + "'");
            (a == "--diff" ? o->diff : o->interval) = *d;
        } else if (a == "--watch") o->watch = true;
        else if (a == "--json") o->format = Options::Format::kJson;
        else if (a == "--folded") o->format = Options::Format::kFolded;
        else if (a == "--top") {
            if (i + 1 >= args.size()) return usage_error("heap: --top needs a number");
            char* end;
            long n = std::strtol(args[++i], &end, 10);
            if (*end || n <= 0) return usage_error("heap: --top needs a positive number, not '" + std::string(args[i]) + "'");
            o->top = size_t(n);
        } else if (!a.empty() && a[0] == '-') {
            return usage_error("heap: unknown option '" + std::string(a) + "'");
        } else if (o->target.empty()) {
            o->target = a;
        } else {
            return usage_error("heap: one PID or unit, not '" + std::string(a) + "' as well");
        }
    }
    if (!o->report.empty())
        return o->target.empty() && !o->watch && o->diff == 0 && o->format == Options::Format::kTable
                   ? kExitOk
                   : usage_error("heap: --symbolize FILE takes no process and no other option");
    if (o->target.empty()) return usage_error("heap: which process? (a PID or a systemd unit)");
    if (o->watch && (o->diff > 0 || o->format != Options::Format::kTable))
        return usage_error("heap: --watch shows the table; not with --diff, --json or --folded");
    if (o->diff > 0 && o->format == Options::Format::kFolded)
        return usage_error("heap: --diff prints a table or --json, not --folded");
    return kExitOk;
}

// The second sample after o.diff seconds, and the growth per process.
bool diff(const Options& o, const std::vector<pid_t>& pids, const std::vector<heap::Snapshot>& first, bool* failed) {
    pause_for(o.diff);
    bool json = o.format == Options::Format::kJson;
    if (json) std::cout << "[";
    size_t shown = 0;
    for (const heap::Snapshot& a : first) {
        heap::Snapshot b;
        if (std::find(pids.begin(), pids.end(), pid_t(a.pid)) == pids.end() || !snapshot(pid_t(a.pid), &b)) {
            *failed = true;
            continue;
        }
        double seconds = b.read_at - a.read_at;  // between the reads, not the namings
        std::vector<heap::Growth> g = heap::growth(a, b, seconds);
        if (json) heap::print_growth_json(std::cout << (shown ? ",\n" : "\n"), b, g, seconds, o.top);
        else heap::print_growth(std::cout << (shown ? "\n" : ""), b, g, seconds, o.top);
        ++shown;
    }
    if (json) std::cout << "]\n";
    return *failed;
}

}  // namespace

int run_heap(Args args) {
    Options o;
    if (int rc = parse(args, &o); rc != kExitOk) return rc;
    if (!o.report.empty()) return heap::symbolize_report(o.report, std::cout, std::cerr);
    std::vector<pid_t> pids;
    char* end;
    long pid = std::strtol(o.target.c_str(), &end, 10);
    if (*end == '\0' && pid > 0) {
        pids.push_back(pid_t(pid));
    } else {
        std::string error;
        std::string unit = o.target.find('.') == std::string::npos ? units::normalize(o.target, &error) : o.target;
        if (unit.empty()) return usage_error("heap: " + error);
        pids = unit_pids(unit);
        if (pids.empty()) {
            std::cerr << "btmctl: heap: no process runs in " << unit << '\n';
            return kExitProblems;
        }
    }
    bool failed = false;
    auto take = [&](std::vector<heap::Snapshot>* all) {
        for (pid_t p : pids) {
            heap::Snapshot s;
            if (snapshot(p, &s)) all->push_back(std::move(s));
            else failed = true;
        }
    };
    std::vector<heap::Snapshot> all;
    if (o.watch) {
        signal(SIGINT, on_interrupt);
        signal(SIGTERM, on_interrupt);
        while (!g_interrupted) {
            all.clear();
            take(&all);
            std::cout << "\033[H\033[2J";  // home, clear: a terminal table
            for (size_t i = 0; i < all.size(); ++i) heap::print_table(std::cout << (i ? "\n" : ""), all[i], o.top);
            std::cout << std::flush;
            if (all.empty()) return kExitProblems;  // every process gone
            pause_for(o.interval);
        }
        return kExitOk;
    }
    take(&all);
    if (o.diff > 0) return diff(o, pids, all, &failed) || failed ? kExitProblems : kExitOk;
    for (size_t i = 0; i < all.size() && o.format != Options::Format::kJson; ++i) {
        if (o.format == Options::Format::kFolded) heap::print_folded(std::cout, all[i]);
        else heap::print_table(std::cout << (i ? "\n" : ""), all[i], o.top);
    }
    if (o.format == Options::Format::kJson) heap::print_json(std::cout, all, o.top);
    return failed ? kExitProblems : kExitOk;
}

}  // namespace btmctl
