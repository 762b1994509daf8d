// `btmctl metrics`: every btmalloc process's allocator figures in the
// Prometheus text format (one family per figure, labelled pid, comm and
// unit), and the top call sites by live bytes per unit.  --textfile DIR
// writes DIR/btmalloc.prom atomically for node_exporter's textfile
// collector (systemd/btm-metrics.timer runs that).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "command.h"
#include "files.h"
#include "heap_format.h"
#include "heap_summary.h"
#include "site_profile.h"
#include "untrusted_text.h"

namespace btmctl {

const std::string_view kMetricsUsage =
    "  btmctl metrics [--top N] [--textfile DIR]\n"
    "                                   allocator figures of every btmalloc process and the\n"
    "                                   top N call sites per unit, in the Prometheus text\n"
    "                                   format (to DIR/btmalloc.prom, atomically)\n";

namespace {

struct Figures {
    long pid = 0;
    std::string comm, unit;
    btm_heap::HeapTotals heap;
    uint64_t rss = 0, swap = 0, pageouts = 0;
};

// A label value: valid UTF-8 without control bytes (process names are
// untrusted), then backslash, double quote and line feed escaped.
std::string label(const std::string& raw) {
    std::string out;
    for (char c : btm_tools::printable(raw)) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

uint64_t status_kib(const std::string& status, const char* key) {
    size_t p = status.find(key);
    return p == std::string::npos ? 0 : std::strtoull(status.c_str() + p + std::strlen(key), nullptr, 10);
}

// Every process with btmalloc's descriptor; *unreadable counts those whose
// maps or memory were refused (another user's, without privilege).
std::vector<Figures> scan(unsigned* unreadable) {
    std::vector<Figures> out;
    for (pid_t pid : all_pids()) {
        if (pid == getpid()) continue;
        const std::string dir = "/proc/" + std::to_string(pid);
        std::string maps;
        int err = read_file(dir + "/maps", &maps);
        if (err == EACCES || err == EPERM) ++*unreadable;
        if (err != 0 || maps.find("libbtmalloc") == std::string::npos) continue;
        btm_heap::Located loc;
        std::string why;
        btm_heap::Found f = btm_heap::locate(pid_t(pid), &loc, &why);
        if (f == btm_heap::Found::kNoAccess) ++*unreadable;
        if (f != btm_heap::Found::kYes) continue;
        Figures x;
        bool gone = false;
        if (!btm_heap::read_totals(pid_t(pid), loc, &x.heap, &why, &gone)) {
            *unreadable += !gone;
            continue;
        }
        x.pid = pid;
        x.comm = comm_of(pid_t(pid));
        x.unit = unit_of(pid_t(pid));
        x.pageouts = loc.d.pageouts;
        std::string status;
        if (read_file(dir + "/status", &status) == 0) {
            x.rss = status_kib(status, "VmRSS:") * 1024;
            x.swap = status_kib(status, "VmSwap:") * 1024;
        }
        out.push_back(std::move(x));
    }
    return out;
}

struct Family {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*value)(const Figures&);
};

const Family kFamilies[] = {
    {"btmalloc_live_bytes", "gauge",
     "Bytes of blocks handed out (small ones out of their slabs, start-up and large blocks).",
     [](const Figures& f) { return f.heap.live; }},
    {"btmalloc_committed_bytes", "gauge", "Bytes of heap chunks and large blocks' mappings committed.",
     [](const Figures& f) { return f.heap.committed; }},
    {"btmalloc_resident_bytes", "gauge", "Resident set of the process (VmRSS).", [](const Figures& f) { return f.rss; }},
    {"btmalloc_swapped_bytes", "gauge", "Swapped-out memory of the process (VmSwap).",
     [](const Figures& f) { return f.swap; }},
    {"btmalloc_pageouts_total", "counter", "Runs of btm-pageout on the process.",
     [](const Figures& f) { return f.pageouts; }},
    {"btmalloc_foreign_frees_total", "counter", "Frees of pointers btmalloc did not allocate.",
     [](const Figures& f) { return f.heap.foreign_frees; }},
    {"btmalloc_invalid_frees_total", "counter", "Frees of btmalloc pointers that were not a live block.",
     [](const Figures& f) { return f.heap.invalid_frees; }},
};

// The top `top` call sites of each unit by live bytes, its processes'
// sites added up by name.
void print_sites(std::ostream& out, const std::vector<Figures>& procs, size_t top) {
    std::map<std::string, std::map<std::pair<std::string, std::string>, uint64_t>> per_unit;
    for (const Figures& f : procs) {
        heap::Snapshot s;
        std::string why;
        if (!heap::snapshot(pid_t(f.pid), &s, &why)) continue;  // gone since the scan
        for (const heap::Site& x : s.sites) {
            std::string name = btm_heap::describe({x.name.module, x.name.module_offset, x.name.function,
                                                   x.name.function_offset, "", 0});
            per_unit[f.unit][{name, x.name.module}] += x.bytes;
        }
    }
    out << "# HELP btmalloc_site_live_bytes Live bytes of a call site, summed over the unit's processes (top "
        << top << " per unit).\n# TYPE btmalloc_site_live_bytes gauge\n";
    for (const auto& [unit, sites] : per_unit) {
        std::vector<std::pair<uint64_t, std::pair<std::string, std::string>>> v;
        for (const auto& [key, bytes] : sites) v.push_back({bytes, key});
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        for (size_t i = 0; i < v.size() && i < top; ++i)
            out << "btmalloc_site_live_bytes{unit=\"" << label(unit) << "\",site=\"" << label(v[i].second.first)
                << "\",module=\"" << label(v[i].second.second) << "\"} " << v[i].first << '\n';
    }
}

std::string render(size_t top) {
    unsigned unreadable = 0;
    std::vector<Figures> procs = scan(&unreadable);
    std::ostringstream out;
    for (const Family& fam : kFamilies) {
        out << "# HELP " << fam.name << ' ' << fam.help << "\n# TYPE " << fam.name << ' ' << fam.type << '\n';
        for (const Figures& f : procs)
            out << fam.name << "{pid=\"" << f.pid << "\",comm=\"" << label(f.comm) << "\",unit=\"" << label(f.unit)
                << "\"} " << fam.value(f) << '\n';
    }
    out << "# HELP btmalloc_processes Processes running on btmalloc that could be read.\n"
           "# TYPE btmalloc_processes gauge\nbtmalloc_processes "
        << procs.size()
        << "\n# HELP btmalloc_unreadable_processes Processes whose memory map or heap could not be read "
           "(another user's, without privilege).\n# TYPE btmalloc_unreadable_processes gauge\n"
           "btmalloc_unreadable_processes "
        << unreadable << '\n';
    print_sites(out, procs, top);
    return out.str();
}

// DIR/btmalloc.prom through a temporary file in DIR and rename(2): the
// collector never reads half a file.
int write_textfile(const std::string& dir, const std::string& text) {
    std::string final_path = dir + "/btmalloc.prom", tmp = dir + "/.btmalloc.prom." + std::to_string(getpid());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0;
    for (size_t done = 0; ok && done < text.size();) {
        ssize_t n = write(fd, text.data() + done, text.size() - done);
        ok = n > 0;
        done += ok ? size_t(n) : 0;
    }
    ok = ok && fsync(fd) == 0;
    int err = errno;
    if (fd >= 0) ok = close(fd) == 0 && ok;
    if (ok && rename(tmp.c_str(), final_path.c_str()) == 0) return kExitOk;
    err = ok ? errno : err;
    unlink(tmp.c_str());
    std::cerr << "btmctl: metrics: cannot write " << final_path << ": " << std::strerror(err) << '\n';
    return kExitProblems;
}

}  // namespace

int run_metrics(Args args) {
    size_t top = 10;
    std::string dir;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if ((a == "--top" || a == "--textfile") && i + 1 >= args.size())
            return usage_error("metrics: " + std::string(a) + " needs a value");
        if (a == "--top") {
            char* end;
            long n = std::strtol(args[++i], &end, 10);
            if (*end || n < 0) return usage_error("metrics: --top needs a number, not '" + std::string(args[i]) + "'");
            top = size_t(n);
        } else if (a == "--textfile") {
            dir = args[++i];
            if (dir.empty()) return usage_error("metrics: --textfile needs a directory");
        } else {
            return usage_error("metrics: unexpected argument '" + std::string(a) + "'");
        }
    }
    std::string text = render(top);
    if (dir.empty()) {
        std::cout << text;
        return kExitOk;
    }
    return write_textfile(dir, text);
}

}  // namespace btmctl
