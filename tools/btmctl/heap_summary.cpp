#include "heap_summary.h"

#include <dirent.h>

#include <systemd/sd-login.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "site_profile.h"

namespace btmctl {

std::vector<pid_t> all_pids() {
    std::vector<pid_t> out;
    std::unique_ptr<DIR, int (*)(DIR*)> proc(opendir("/proc"), closedir);
    if (!proc) return out;
    while (dirent* e = readdir(proc.get())) {
        char* end;
        long pid = std::strtol(e->d_name, &end, 10);
        if (*end == '\0' && pid > 0) out.push_back(pid_t(pid));
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string unit_of(pid_t pid) {
    char* unit = nullptr;
    std::string out = sd_pid_get_unit(pid, &unit) >= 0 && unit ? unit : "-";
    std::free(unit);
    return out;
}

std::string comm_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(f, comm);
    return comm;
}

std::string heap_line(long pid) {
    btm_heap::Located loc;
    std::string why;
    if (btm_heap::locate(pid_t(pid), &loc, &why) != btm_heap::Found::kYes)
        return "heap: " + (why.empty() ? std::string("not readable") : why);
    btm_heap::HeapTotals t;
    bool gone = false;
    if (!btm_heap::read_totals(pid_t(pid), loc, &t, &why, &gone)) return "heap: " + why;
    char line[160];
    constexpr double kMiB = 1024.0 * 1024;
    if (!loc.d.ready) {
        std::snprintf(line, sizeof line, "heap: live %.1f MiB in its start-up phase (start-up arena and large blocks)",
                      double(t.live) / kMiB);
        return line;
    }
    std::snprintf(line, sizeof line, "heap: live %.1f MiB, committed %.1f MiB (%.0f%% of it live)",
                  double(t.live) / kMiB, double(t.committed) / kMiB,
                  t.committed ? 100.0 * double(t.live) / double(t.committed) : 0.0);
    return line;
}

}  // namespace btmctl
