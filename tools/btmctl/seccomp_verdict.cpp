#include "seccomp_verdict.h"

#include <array>

namespace btmctl::seccomp {
namespace {

// systemd.exec(5): each of these installs a seccomp filter when set (to
// anything but "no"/"false"/an empty value).
constexpr std::array<std::string_view, 12> kFilterSettings = {
    "SystemCallFilter",      "SystemCallArchitectures", "MemoryDenyWriteExecute", "RestrictRealtime",
    "RestrictSUIDSGID",      "LockPersonality",         "RestrictNamespaces",     "RestrictAddressFamilies",
    "PrivateDevices",        "ProtectKernelModules",    "ProtectKernelLogs",      "ProtectClock",
};

bool is_off(std::string_view v) { return v.empty() || v == "no" || v == "false" || v == "0" || v == "off"; }

}  // namespace

void note_setting(std::string_view key, std::string_view value, Sandboxing* s) {
    if (key == "SystemCallErrorNumber") {
        s->error_number = value;
        return;
    }
    for (std::string_view k : kFilterSettings) {
        if (key != k) continue;
        std::string name(key);
        if (key == "SystemCallFilter" && !value.empty()) {
            std::string& all = s->filters[name];  // the lines add up
            if (!all.empty()) all += ' ';
            all.append(value);
        } else if (is_off(value)) {
            s->filters.erase(name);
        } else {
            s->filters[name] = value;
        }
        return;
    }
}

std::string verdict(const std::string& unit, const Sandboxing& s) {
    if (s.filters.empty())
        return unit + ": no seccomp filter in its settings: btmalloc returns memory from its background thread "
                      "(through io_uring where the kernel allows it).\n";
    std::string why;
    for (const auto& [key, value] : s.filters) {
        if (!why.empty()) why += ", ";
        why.append(key).append("=").append(value);
    }
    std::string out = unit + ": runs under a seccomp filter (" + why +
                      "): btmalloc starts no background thread and never calls io_uring there; it returns memory "
                      "inline, on its own slow paths (seccomp_async=on overrides this).\n";
    auto f = s.filters.find("SystemCallFilter");
    if (f != s.filters.end() && s.error_number.empty())
        out += unit + ": SystemCallFilter= without SystemCallErrorNumber= kills the process for any call it does "
                      "not allow: keep seccomp_async off for it.\n";
    return out;
}

}  // namespace btmctl::seccomp
