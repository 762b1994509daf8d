#include "heap_summary.h"

#include <cstdio>

#include "site_profile.h"

namespace btmctl {

std::string heap_line(long pid) {
    btm_heap::Located loc;
    std::string why;
    if (btm_heap::locate(pid_t(pid), &loc, &why) != btm_heap::Found::kYes)
        return "heap: " + (why.empty() ? std::string("not readable") : why);
    btm_heap::HeapTotals t;
    bool gone = false;
    if (!btm_heap::read_totals(pid_t(pid), loc, &t, &why, &gone)) return "heap: " + why;
    if (!loc.d.ready) return "heap: still in its start-up phase (no heap tables yet)";
    char line[160];
    constexpr double kMiB = 1024.0 * 1024;
    std::snprintf(line, sizeof line, "heap: live %.1f MiB, committed %.1f MiB (%.0f%% of it live)",
                  double(t.live) / kMiB, double(t.committed) / kMiB,
                  t.committed ? 100.0 * double(t.live) / double(t.committed) : 0.0);
    return line;
}

}  // namespace btmctl
