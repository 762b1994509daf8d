// systemd services: the per-service drop-in that preloads btmalloc, the
// service's own LD_PRELOAD (from the running manager over D-Bus, or from its
// unit files on disk), and asking the manager to reload.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "seccomp_verdict.h"

namespace btmctl::units {

inline constexpr std::string_view kDropInName = "50-btmalloc.conf";

// "nginx" -> "nginx.service".  Returns "" and sets *error for a name that
// is not a service unit's.
std::string normalize(std::string_view name, std::string* error);

// ROOT/etc/systemd/system/UNIT.d/50-btmalloc.conf
std::string drop_in_path(const std::string& root, const std::string& unit);

// What the unit sets without our drop-in.
struct OwnEnvironment {
    bool found = false;        // the unit exists
    bool masked = false;       // linked to /dev/null
    bool has_ld_preload = false;
    std::string ld_preload;    // its LD_PRELOAD value, if any, as written in a unit file (specifiers
                               // and escapes kept, fit to go between double quotes)
    bool environment_file = false;  // it reads EnvironmentFile=, not merged
    seccomp::Sandboxing sandboxing;  // from unit files only (not asked of the manager)
    std::string error;         // set when the lookup itself failed
};

// From the unit file and its drop-ins under ROOT ("" for /), in systemd's
// search order, leaving out our own drop-in.
OwnEnvironment read_unit_files(const std::string& root, const std::string& unit);

// From the running manager (`systemctl show -p Environment UNIT`), over
// D-Bus.  Its value includes our drop-in's LD_PRELOAD once loaded; the
// caller removes our library from it.
OwnEnvironment ask_manager(const std::string& unit);

// Words of an Environment= value, split and unquoted as systemd does, but
// with specifiers (%h, %%) and escapes (\x20, \") kept as written: the
// drop-in hands them to systemd again.  A '"' from inside single quotes
// comes out escaped.
std::vector<std::string> split_words(std::string_view value);

// LIBRARY first, then OTHERS' entries that IS_OURS does not match, joined
// with ':'.
template <typename Pred>
std::string merge_preload(const std::string& library, std::string_view others, Pred is_ours);

// The drop-in's text for this LD_PRELOAD value, in unit-file syntax (from
// the template in systemd/btmalloc-preload.conf.in).
std::string render_drop_in(std::string_view value);

// True when systemd is the running init (sd_booted).
bool systemd_running();

// Manager.Reload over D-Bus.  Returns "" or the error.
std::string reload_manager();

// Splits an LD_PRELOAD value (blanks or colons).
std::vector<std::string> preload_entries(std::string_view value);

template <typename Pred>
std::string merge_preload(const std::string& library, std::string_view others, Pred is_ours) {
    std::string out = library;
    for (const std::string& e : preload_entries(others)) {
        if (is_ours(e) || e == library) continue;
        out += ':';
        out += e;
    }
    return out;
}

}  // namespace btmctl::units
