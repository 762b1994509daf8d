// `btmctl status`: is btmalloc enabled machine-wide or for services, and
// which processes run on it now, with their memory and their unit.
#include <dirent.h>
#include <sys/stat.h>

#include <systemd/sd-login.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "enablement.h"
#include "files.h"
#include "heap_reader.h"
#include "heap_summary.h"
#include "units.h"
#include "untrusted_text.h"

namespace btmctl {

const std::string_view kStatusUsage =
    "  btmctl status [--library PATH] [--preload-file FILE]\n"
    "                                   where btmalloc is enabled, and the processes that\n"
    "                                   map it, with RSS, swap, systemd unit, and live\n"
    "                                   and committed heap bytes\n";

namespace {

// Whether the process accepts btm-pageout, and its last run, read from the
// library's introspection descriptor (tools/common).
std::string pageout_line(long pid) {
    btm_heap::Located loc;
    std::string why;
    switch (btm_heap::locate(pid_t(pid), &loc, &why)) {
        case btm_heap::Found::kYes: break;
        case btm_heap::Found::kNotBtmalloc: return "pageout: " + (why.empty() ? std::string("not btmalloc") : why);
        case btm_heap::Found::kGone: return "pageout: exited";
        default: return "pageout: " + why;
    }
    std::string out = loc.d.accepts_pageout ? "pageout: accepted" : "pageout: refused (pageout = off)";
    if (!loc.d.ready) return out + "; no heap yet";
    if (loc.d.pageouts == 0) return out + "; never run";
    char when[64] = "?";
    time_t t = time_t(loc.d.last_pageout_realtime);
    if (tm parts; gmtime_r(&t, &parts)) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &parts);
    char line[160];
    std::snprintf(line, sizeof line, "; last run %s, %.1f MiB, %llu run(s)", when,
                  double(loc.d.last_pageout_bytes) / (1024.0 * 1024), (unsigned long long)loc.d.pageouts);
    return out + line;
}

struct Process {
    long pid = 0;
    std::string library;   // the mapped path
    bool replaced = false;  // the file it mapped was deleted or replaced since
    long rss_kib = 0;
    long swap_kib = 0;
    std::string unit = "-";
    std::string command;
};

long status_field_kib(const std::string& status, const char* key) {
    size_t p = status.find(key);
    if (p == std::string::npos) return 0;
    return std::strtol(status.c_str() + p + std::char_traits<char>::length(key), nullptr, 10);
}

// The path of a mapping of libbtmalloc in a /proc/PID/maps text, or "".
std::string mapped_library(const std::string& maps, bool* replaced) {
    size_t i = 0;
    while (i < maps.size()) {
        size_t nl = maps.find('\n', i);
        if (nl == std::string::npos) nl = maps.size();
        std::string_view line(maps.data() + i, nl - i);
        i = nl + 1;
        size_t slash = line.find('/');
        if (slash == std::string_view::npos) continue;
        std::string_view path = line.substr(slash);
        std::string_view base = path.substr(path.rfind('/') + 1);
        if (base.rfind("libbtmalloc", 0) != 0) continue;
        constexpr std::string_view kDeleted = " (deleted)";
        if (path.size() > kDeleted.size() && path.substr(path.size() - kDeleted.size()) == kDeleted) {
            *replaced = true;
            path.remove_suffix(kDeleted.size());
        }
        return std::string(path);
    }
    return {};
}

std::vector<Process> scan(unsigned* unreadable) {
    std::vector<Process> out;
    for (pid_t pid : all_pids()) {
        std::string dir = "/proc/" + std::to_string(pid);
        std::string maps;
        int err = read_file(dir + "/maps", &maps);
        if (err == EACCES || err == EPERM) ++*unreadable;
        if (err != 0) continue;
        Process p;
        p.pid = pid;
        p.library = mapped_library(maps, &p.replaced);
        if (p.library.empty()) continue;
        std::string status;
        if (read_file(dir + "/status", &status) == 0) {
            p.rss_kib = status_field_kib(status, "VmRSS:");
            p.swap_kib = status_field_kib(status, "VmSwap:");
        }
        std::string cmdline;
        if (read_file(dir + "/cmdline", &cmdline) == 0) {
            while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
            for (char& c : cmdline)
                if (c == '\0') c = ' ';
            if (cmdline.size() > 60) cmdline = cmdline.substr(0, 57) + "...";
            p.command = btm_tools::printable(cmdline);
        }
        if (p.command.empty()) {
            std::string comm;
            if (read_file(dir + "/comm", &comm) == 0) {
                while (!comm.empty() && comm.back() == '\n') comm.pop_back();
                p.command = std::string("[").append(btm_tools::printable(comm)).append("]");
            }
        }
        char* unit = nullptr;
        if (sd_pid_get_unit(pid_t(pid), &unit) >= 0 && unit) p.unit = btm_tools::printable(unit);
        std::free(unit);
        out.push_back(std::move(p));
    }
    return out;
}

std::vector<std::string> services_with_drop_in() {
    std::vector<std::string> out;
    const std::string dir = "/etc/systemd/system";
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
    if (!d) return out;
    while (dirent* e = readdir(d.get())) {
        std::string name = e->d_name;
        if (name.size() < 11 || name.compare(name.size() - 10, 10, ".service.d") != 0) continue;
        struct stat st;
        if (stat((dir + "/" + name + "/" + std::string(units::kDropInName)).c_str(), &st) == 0)
            out.push_back(name.substr(0, name.size() - 2));
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

int run_status(Args args) {
    Target t;
    t.system = true;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        std::string value;
        if (a == "--library" || a == "--preload-file") {
            if (i + 1 >= args.size()) return usage_error("status: " + std::string(a) + " needs a value");
            value = args[++i];
        } else if (a.rfind("--library=", 0) == 0 || a.rfind("--preload-file=", 0) == 0) {
            value = std::string(a.substr(a.find('=') + 1));
            a = a.substr(0, a.find('='));
        } else {
            return usage_error("status: unexpected argument '" + std::string(a) + "'");
        }
        if (value.empty()) return usage_error("status: " + std::string(a) + " needs a value");
        (a == "--library" ? t.library : t.preload_file) = value;
    }

    std::string file = preload_file_path(t);
    std::string text;
    bool listed = false;
    if (read_file(file, &text) == 0) {
        preload::Matcher is_ours = ours(t);
        for (const std::string& e : preload::entries(text)) listed = listed || is_ours(e);
    }
    std::cout << "machine-wide: " << (listed ? "enabled (" : "disabled (") << file << (listed ? " lists " : " does not list ")
              << t.library << ")\n";
    std::vector<std::string> services = services_with_drop_in();
    std::cout << "services with the drop-in:";
    if (services.empty()) std::cout << " none";
    for (const std::string& s : services) std::cout << ' ' << s;
    std::cout << '\n';

    unsigned unreadable = 0;
    std::vector<Process> procs = scan(&unreadable);
    std::sort(procs.begin(), procs.end(), [](const Process& a, const Process& b) { return a.pid < b.pid; });
    long rss = 0, swap = 0;
    if (!procs.empty()) {
        char line[256];
        std::snprintf(line, sizeof line, "%8s %-28s %10s %10s  %s\n", "PID", "UNIT", "RSS_KIB", "SWAP_KIB", "COMMAND");
        std::cout << line;
    }
    for (const Process& p : procs) {
        char line[512];
        std::snprintf(line, sizeof line, "%8ld %-28s %10ld %10ld  %s%s\n", p.pid, p.unit.c_str(), p.rss_kib,
                      p.swap_kib, p.command.c_str(), p.replaced ? "  (library replaced: restart it)" : "");
        std::cout << line;
        std::cout << "         " << pageout_line(p.pid) << '\n';
        std::cout << "         " << heap_line(p.pid) << '\n';
        rss += p.rss_kib;
        swap += p.swap_kib;
    }
    std::cout << procs.size() << (procs.size() == 1 ? " process uses" : " processes use") << " btmalloc: RSS "
              << rss << " KiB, swap " << swap << " KiB\n";
    if (unreadable)
        std::cout << unreadable << (unreadable == 1 ? " process" : " processes")
                  << " could not be inspected (permission denied)\n";
    return kExitOk;
}

}  // namespace btmctl
