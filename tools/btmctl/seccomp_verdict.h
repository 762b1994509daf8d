// What btmalloc will do in a service that systemd confines with a seccomp
// filter.  The library decides from the "Seccomp:" line of its own
// /proc/thread-self/status (btmalloc(7), "Seccomp filters"); this predicts
// that line from the unit's settings, so `btmctl enable` can say it.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace btmctl::seccomp {

// The unit's settings that make systemd install a seccomp filter, by key,
// with their last value (an empty value resets SystemCallFilter=).
struct Sandboxing {
    std::map<std::string, std::string> filters;
    std::string error_number;  // SystemCallErrorNumber=
};

// Records KEY=VALUE of a [Service] section if it is one of those settings.
void note_setting(std::string_view key, std::string_view value, Sandboxing* s);

// One or two lines for `btmctl enable`: whether the service runs under a
// filter and how memory goes back to the kernel there.
std::string verdict(const std::string& unit, const Sandboxing& s);

}  // namespace btmctl::seccomp
