#include "core.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "untrusted_text.h"

namespace btm_pageout {

const char kUsage[] =
    "usage: btm-pageout [--pid PID]... [--unit UNIT]... [--all] [--idle-for DURATION]\n"
    "                   [--idle-threshold FRACTION] [--min-age SECONDS] [--min-rss SIZE]\n"
    "                   [--dry-run] [--json] [--wait SECONDS]\n"
    "Pages out the slabs that processes running with btmalloc have not touched for\n"
    "--min-age seconds.  It reads each process's heap tables from outside\n"
    "(process_vm_readv) and hands the cold ranges to the kernel (process_madvise,\n"
    "MADV_PAGEOUT): nothing runs in the process and no signal is sent.  Processes\n"
    "without btmalloc, or whose configuration says pageout = off, are skipped with\n"
    "the reason.  Needs root (CAP_SYS_NICE and ptrace access).\n"
    "  --pid PID            a process (repeatable)\n"
    "  --unit UNIT          the processes of a systemd unit (repeatable)\n"
    "  --all                every process\n"
    "  --idle-for DURATION  keep only processes using under --idle-threshold CPU\n"
    "                       (default 0.01 CPU seconds per second) over DURATION\n"
    "  --min-age SECONDS    page out slabs untouched this long (default 10)\n"
    "  --min-rss SIZE       skip processes with less resident memory (e.g. 64M)\n"
    "  --dry-run            select and report, send nothing\n"
    "  --json               print the report as JSON\n"
    "  --wait SECONDS       wait before measuring RSS and swap again (default 2)\n"
    "Exit status: 0 done, 1 nothing to do or a partial failure, 2 usage error.\n";

namespace {

bool parse_number(std::string_view s, double* out, std::string_view* suffix) {
    std::string t(s);
    if (t.empty() || !(std::isdigit(static_cast<unsigned char>(t[0])) || t[0] == '.')) return false;
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(t.c_str(), &end);
    if (errno || end == t.c_str() || !std::isfinite(v) || v < 0) return false;
    *out = v;
    *suffix = s.substr(static_cast<size_t>(end - t.c_str()));
    return true;
}

bool parse_uint(std::string_view s, unsigned long long max, unsigned long long* out) {
    if (s.empty() || s.size() > 19) return false;
    unsigned long long v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + unsigned(c - '0');
    }
    if (v > max) return false;
    *out = v;
    return true;
}

}  // namespace

std::optional<double> parse_duration(std::string_view s, bool allow_zero) {
    double v;
    std::string_view suf;
    if (!parse_number(s, &v, &suf)) return std::nullopt;
    double mul;
    if (suf.empty() || suf == "s") mul = 1;
    else if (suf == "ms") mul = 0.001;
    else if (suf == "m" || suf == "min") mul = 60;
    else if (suf == "h") mul = 3600;
    else return std::nullopt;
    v *= mul;
    if ((!allow_zero && v <= 0) || v > 86400) return std::nullopt;
    return v;
}

std::optional<uint64_t> parse_size(std::string_view s) {
    double v;
    std::string_view suf;
    if (!parse_number(s, &v, &suf)) return std::nullopt;
    if (suf.ends_with("iB")) suf.remove_suffix(2);
    else if (suf.size() > 1 && (suf.back() == 'B' || suf.back() == 'b')) suf.remove_suffix(1);
    double mul;
    if (suf.empty() || suf == "B" || suf == "b") mul = 1;
    else if (suf == "k" || suf == "K") mul = 1024.0;
    else if (suf == "m" || suf == "M") mul = 1024.0 * 1024;
    else if (suf == "g" || suf == "G") mul = 1024.0 * 1024 * 1024;
    else if (suf == "t" || suf == "T") mul = 1024.0 * 1024 * 1024 * 1024;
    else return std::nullopt;
    v *= mul;
    if (v >= 1.8e19) return std::nullopt;
    return static_cast<uint64_t>(v);
}

bool parse_args(int argc, char* const* argv, Options* o, std::string* error) {
    auto value = [&](int& i, std::string_view name, std::string_view* v) {
        std::string_view a = argv[i];
        if (a.size() > name.size() && a.starts_with(name) && a[name.size()] == '=') {
            *v = a.substr(name.size() + 1);
            return true;
        }
        if (i + 1 >= argc) {
            *error = std::string(name) + " needs a value";
            return false;
        }
        *v = argv[++i];
        return true;
    };
    auto is = [](std::string_view a, std::string_view name) {
        return a == name || (a.starts_with(name) && a.size() > name.size() && a[name.size()] == '=');
    };
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i], v;
        if (a == "--help" || a == "-h") {
            o->help = true;
        } else if (a == "--all") {
            o->all = true;
        } else if (a == "--dry-run") {
            o->dry_run = true;
        } else if (a == "--json") {
            o->json = true;
        } else if (is(a, "--pid")) {
            if (!value(i, "--pid", &v)) return false;
            unsigned long long p;
            if (!parse_uint(v, 0x3fffffff, &p) || p == 0) {
                *error = "--pid: not a process id: " + std::string(v);
                return false;
            }
            o->pids.push_back(pid_t(p));
        } else if (is(a, "--unit")) {
            if (!value(i, "--unit", &v)) return false;
            if (v.empty() || v.find('/') != std::string_view::npos) {
                *error = "--unit: not a unit name: " + std::string(v);
                return false;
            }
            std::string u(v);
            if (u.find('.') == std::string::npos) u += ".service";
            o->units.push_back(u);
        } else if (is(a, "--idle-for")) {
            if (!value(i, "--idle-for", &v)) return false;
            o->idle_for = parse_duration(v);
            if (!o->idle_for) {
                *error = "--idle-for: expected a duration such as 30s, 5m or 1h: " + std::string(v);
                return false;
            }
        } else if (is(a, "--idle-threshold")) {
            if (!value(i, "--idle-threshold", &v)) return false;
            double t;
            std::string_view suf;
            if (!parse_number(v, &t, &suf) || !suf.empty() || t <= 0 || t > 1024) {
                *error = "--idle-threshold: expected CPU seconds per second, e.g. 0.01: " + std::string(v);
                return false;
            }
            o->idle_threshold = t;
        } else if (is(a, "--min-age")) {
            if (!value(i, "--min-age", &v)) return false;
            unsigned long long n;
            if (!parse_uint(v, 0x7fffffff, &n)) {
                *error = "--min-age: expected whole seconds: " + std::string(v);
                return false;
            }
            o->min_age = unsigned(n);
        } else if (is(a, "--min-rss")) {
            if (!value(i, "--min-rss", &v)) return false;
            auto s = parse_size(v);
            if (!s) {
                *error = "--min-rss: expected a size such as 4096, 64K, 20M or 1G: " + std::string(v);
                return false;
            }
            o->min_rss = *s;
        } else if (is(a, "--wait")) {
            if (!value(i, "--wait", &v)) return false;
            auto d = parse_duration(v, true);
            if (!d || *d > 3600) {
                *error = "--wait: expected seconds (0 to 3600): " + std::string(v);
                return false;
            }
            o->wait = *d;
        } else if (is(a, "--signal")) {
            // Old command lines (an /etc/default/btm-pageout kept from the
            // signal design) must still run: the value is not looked at.
            if (!value(i, "--signal", &v)) return false;
            o->obsolete_signal = true;
        } else {
            *error = "unknown argument: " + std::string(a);
            return false;
        }
    }
    if (o->help) return true;
    if (o->pids.empty() && o->units.empty() && !o->all) {
        *error = "say which processes: --pid, --unit or --all";
        return false;
    }
    if (o->all && (!o->pids.empty() || !o->units.empty())) {
        *error = "--all cannot be combined with --pid or --unit";
        return false;
    }
    return true;
}

bool is_idle(const CpuSample& s, double window, double threshold, long hz) {
    if (s.gone || window <= 0 || hz <= 0) return false;
    if (s.end_ticks < s.start_ticks) return false;  // a different process: be careful
    double used = double(s.end_ticks - s.start_ticks) / double(hz);
    return used < threshold * window;
}

std::vector<bool> idle_by_group(const std::vector<CpuSample>& samples, const std::vector<std::string>& group,
                                double window, double threshold, long hz) {
    std::vector<bool> idle(samples.size(), false);
    std::map<std::string, CpuSample> sum;
    for (size_t i = 0; i < samples.size(); ++i) {
        const CpuSample& s = samples[i];
        if (group[i].empty() || s.gone) continue;
        CpuSample& g = sum[group[i]];
        g.start_ticks += s.start_ticks;
        // A counter that went backwards (another process) makes the group busy.
        g.end_ticks += s.end_ticks >= s.start_ticks ? s.end_ticks : s.start_ticks + (uint64_t(1) << 40);
    }
    for (size_t i = 0; i < samples.size(); ++i) {
        if (samples[i].gone) continue;
        idle[i] = group[i].empty() ? is_idle(samples[i], window, threshold, hz)
                                   : is_idle(sum[group[i]], window, threshold, hz);
    }
    return idle;
}

int exit_status(const Report& r) {
    bool any = false;
    for (const Entry& e : r.entries) {
        if (!e.target) continue;
        any = true;
        if (!r.dry_run && !e.ok) return kExitNothing;
    }
    return any ? kExitOk : kExitNothing;
}

namespace {

std::string mib(uint64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / (1024.0 * 1024));
    return buf;
}

std::string delta(uint64_t before, uint64_t after) {
    char buf[48];
    double d = (double(after) - double(before)) / (1024.0 * 1024);
    std::snprintf(buf, sizeof buf, "%+.1f MiB", d);
    return buf;
}

// A process that exited before "after" was measured freed its memory by
// exiting, not by paging out: it is reported and left out of the totals.
bool counted(const Report& r, const Entry& e) { return e.target && (r.dry_run || (e.ok && !e.gone)); }

}  // namespace

std::string format_text(const Report& r) {
    std::string out;
    if (r.no_swap)
        out += "warning: this machine has no swap: paging out anonymous memory frees nothing\n";
    uint64_t rb = 0, sb = 0, ra = 0, sa = 0, paged = 0;
    unsigned targets = 0, failed = 0, gone = 0;
    for (const Entry& e : r.entries) {
        std::string who = std::to_string(e.pid) + " (" + btm_tools::printable(e.comm) + ")";
        if (!e.unit.empty()) who += " " + btm_tools::printable(e.unit);
        if (!e.target) {
            out += "skipped " + who + ": " + e.reason + "\n";
            continue;
        }
        ++targets;
        if (!r.dry_run && !e.ok) {
            ++failed;
            out += "failed  " + who + ": " + e.reason + "\n";
            continue;
        }
        if (e.gone) {
            ++gone;
            out += "gone    " + who + ": exited after the pageout; its memory is not counted\n";
            continue;
        }
        rb += e.rss_before, sb += e.swap_before, paged += e.paged_bytes;
        std::string cold = mib(e.paged_bytes) + " of cold memory";
        if (r.dry_run || !e.have_after) {
            out += (r.dry_run ? "would page out " : "paged   ") + who + ": " + cold + "; rss " +
                   mib(e.rss_before) + ", swap " + mib(e.swap_before) + "\n";
            continue;
        }
        ra += e.rss_after, sa += e.swap_after;
        out += "paged   " + who + ": " + cold + "; rss " + mib(e.rss_before) + " -> " + mib(e.rss_after) + " (" +
               delta(e.rss_before, e.rss_after) + "), swap " + mib(e.swap_before) + " -> " + mib(e.swap_after) +
               "\n";
    }
    out += "total: " + std::to_string(targets) + " process(es)";
    if (failed) out += ", " + std::to_string(failed) + " failed";
    if (gone) out += ", " + std::to_string(gone) + " gone";
    out += ", " + mib(paged) + " of cold memory";
    if (r.dry_run) out += " (dry run), rss " + mib(rb) + ", swap " + mib(sb) + "\n";
    else
        out += ", rss " + mib(rb) + " -> " + mib(ra) + " (" + delta(rb, ra) + "), swap " + mib(sb) + " -> " +
               mib(sa) + "\n";
    return out;
}

std::string json_string(std::string_view s) { return btm_tools::json_string(s); }

std::string format_json(const Report& r) {
    std::string out = "{\"min_age\":" + std::to_string(r.min_age) +
                      ",\"dry_run\":" + (r.dry_run ? "true" : "false") +
                      ",\"swap\":" + (r.no_swap ? "false" : "true") + ",\"processes\":[";
    uint64_t rb = 0, sb = 0, ra = 0, sa = 0, paged = 0;
    unsigned targets = 0, ok = 0, gone = 0;
    bool first = true;
    for (const Entry& e : r.entries) {
        if (!first) out += ",";
        first = false;
        const char* status = !e.target ? "skipped"
                             : r.dry_run ? "selected"
                             : !e.ok     ? "failed"
                             : e.gone    ? "gone"
                                         : "paged";
        out += "{\"pid\":" + std::to_string(e.pid) + ",\"comm\":" + json_string(e.comm) +
               ",\"unit\":" + (e.unit.empty() ? std::string("null") : json_string(e.unit)) +
               ",\"status\":\"" + status + "\"";
        if (!e.reason.empty()) out += ",\"reason\":" + json_string(e.reason);
        if (e.target) {
            ++targets;
            gone += e.gone;
            out += ",\"paged_bytes\":" + std::to_string(e.paged_bytes) +
                   ",\"rss_before\":" + std::to_string(e.rss_before) +
                   ",\"swap_before\":" + std::to_string(e.swap_before);
            if (counted(r, e)) rb += e.rss_before, sb += e.swap_before, paged += e.paged_bytes;
            if (e.ok && !e.gone) ++ok;
            if (e.have_after && !e.gone) {
                out += ",\"rss_after\":" + std::to_string(e.rss_after) +
                       ",\"swap_after\":" + std::to_string(e.swap_after);
                ra += e.rss_after, sa += e.swap_after;
            }
        }
        out += "}";
    }
    out += "],\"total\":{\"targets\":" + std::to_string(targets) + ",\"paged\":" + std::to_string(ok) +
           ",\"gone\":" + std::to_string(gone) + ",\"paged_bytes\":" + std::to_string(paged) +
           ",\"rss_before\":" + std::to_string(rb) + ",\"swap_before\":" + std::to_string(sb);
    if (!r.dry_run) out += ",\"rss_after\":" + std::to_string(ra) + ",\"swap_after\":" + std::to_string(sa);
    out += "}}\n";
    return out;
}

}  // namespace btm_pageout
