#include "units.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include "drop_in_template.h"
#include "files.h"

namespace btmctl::units {
namespace {

// The directories systemd searches for system units, highest priority first
// (systemd.unit(5)); /lib/systemd/system is the same directory as
// /usr/lib/systemd/system on merged-/usr systems and is searched last.
const char* const kSearchPath[] = {
    "/etc/systemd/system.control", "/run/systemd/system.control", "/run/systemd/transient",
    "/etc/systemd/system",         "/run/systemd/system",         "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",     "/lib/systemd/system",
};

constexpr const char* kManager = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManagerInterface = "org.freedesktop.systemd1.Manager";

std::string_view trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

// Follows symbolic links inside ROOT (an absolute target is taken relative to
// ROOT, as `systemctl --root` does).  Sets *masked for a link to /dev/null.
// Returns "" when PATH does not exist.
std::string resolve(const std::string& root, std::string path, bool* masked) {
    for (int depth = 0; depth < 16; ++depth) {
        struct stat st;
        if (lstat(path.c_str(), &st) != 0) return {};
        if (!S_ISLNK(st.st_mode)) return path;
        char target[4096];
        ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
        if (n < 0) return {};
        target[n] = '\0';
        if (std::strcmp(target, "/dev/null") == 0) {
            *masked = true;
            return {};
        }
        path = target[0] == '/' ? root + target : dir_name(path) + "/" + target;
    }
    return {};
}

// The manager gives values with specifiers expanded and escapes undone:
// written back so that systemd reads the same value again.
std::string unit_syntax(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '%') out += '%';
        if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

// Applies the [Service] Environment= and EnvironmentFile= settings of one
// unit file or drop-in, in order.
void apply_settings(std::string_view text, OwnEnvironment* env) {
    bool in_service = false;
    std::string logical;
    size_t i = 0;
    while (i <= text.size()) {
        size_t nl = text.find('\n', i);
        std::string_view raw = text.substr(i, nl == std::string_view::npos ? std::string_view::npos : nl - i);
        i = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
        std::string_view piece = trim(raw);
        if (logical.empty() && (piece.empty() || piece[0] == '#' || piece[0] == ';')) continue;
        if (!piece.empty() && piece.back() == '\\') {  // continued on the next line
            logical.append(piece.substr(0, piece.size() - 1));
            logical += ' ';
            continue;
        }
        logical.append(piece);
        std::string_view line = trim(logical);
        if (!line.empty() && line[0] == '[') {
            in_service = line == "[Service]";
        } else if (in_service) {
            size_t eq = line.find('=');
            if (eq != std::string_view::npos) {
                std::string_view key = trim(line.substr(0, eq));
                std::string_view value = trim(line.substr(eq + 1));
                if (key == "Environment") {
                    if (value.empty()) {
                        env->has_ld_preload = false;
                        env->ld_preload.clear();
                    }
                    for (const std::string& w : split_words(value)) {
                        if (w.rfind("LD_PRELOAD=", 0) == 0) {
                            env->has_ld_preload = true;
                            env->ld_preload = w.substr(11);
                        }
                    }
                } else if (key == "EnvironmentFile") {
                    env->environment_file = !value.empty();
                } else {
                    seccomp::note_setting(key, value, &env->sandboxing);
                }
            }
        }
        logical.clear();
    }
}

// The drop-in directory names of UNIT, least specific first: "service.d",
// then one per dash-separated prefix ("a-.service.d" for "a-b.service"),
// the template's ("a@.service.d") and the unit's own.
std::vector<std::string> drop_in_dirs(const std::string& unit) {
    size_t dot = unit.rfind('.');
    std::string type = unit.substr(dot + 1);
    std::string stem = unit.substr(0, dot);
    std::vector<std::string> out{type + ".d"};
    size_t at = stem.find('@');
    std::string prefix_part = at == std::string::npos ? stem : stem.substr(0, at);
    for (size_t dash = prefix_part.find('-'); dash != std::string::npos; dash = prefix_part.find('-', dash + 1))
        out.push_back(prefix_part.substr(0, dash + 1) + "." + type + ".d");
    if (at != std::string::npos && at + 1 < stem.size()) out.push_back(stem.substr(0, at + 1) + "." + type + ".d");
    out.push_back(unit + ".d");
    return out;
}

struct BusDeleter {
    void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
struct MessageDeleter {
    void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using Bus = std::unique_ptr<sd_bus, BusDeleter>;
using Message = std::unique_ptr<sd_bus_message, MessageDeleter>;

struct BusError {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    ~BusError() { sd_bus_error_free(&e); }
    std::string text(int r) const {
        if (sd_bus_error_is_set(&e) && e.message) return e.message;
        return std::strerror(-r);
    }
};

void free_strv(char** v) {
    if (!v) return;
    for (char** p = v; *p; ++p) std::free(*p);
    std::free(v);
}

Bus open_system_bus(std::string* error) {
    sd_bus* raw = nullptr;
    int r = sd_bus_open_system(&raw);
    if (r < 0) {
        *error = std::string("cannot connect to the system bus: ") + std::strerror(-r);
        return nullptr;
    }
    return Bus(raw);
}

}  // namespace

std::string normalize(std::string_view name, std::string* error) {
    std::string unit(name);
    if (unit.find('.') == std::string::npos) unit += ".service";
    bool ok = unit.size() <= 255 && unit[0] != '.' && unit[0] != '-';
    for (char c : unit)
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == ':' || c == '_' || c == '.' || c == '-' || c == '@' || c == '\\');
    std::string quoted = "'";
    quoted.append(name).append("'");
    if (!ok) {
        *error = quoted + " is not a unit name";
        return {};
    }
    std::string_view suffix = ".service";
    if (unit.size() <= suffix.size() || unit.compare(unit.size() - suffix.size(), suffix.size(), suffix) != 0) {
        *error = quoted + " is not a service: only services run programs with LD_PRELOAD";
        return {};
    }
    if (unit.size() > 9 && unit.compare(unit.size() - 9, 9, "@.service") == 0) {
        *error = quoted + " is a template: name an instance (NAME@INSTANCE.service)";
        return {};
    }
    return unit;
}

std::string drop_in_path(const std::string& root, const std::string& unit) {
    return root + "/etc/systemd/system/" + unit + ".d/" + std::string(kDropInName);
}

std::vector<std::string> split_words(std::string_view value) {
    std::vector<std::string> out;
    std::string cur;
    bool in_word = false;
    char quote = 0;
    for (size_t i = 0; i < value.size(); ++i) {
        char c = value[i];
        if (!quote && (c == ' ' || c == '\t' || c == '\n')) {
            if (in_word) out.push_back(cur);
            cur.clear();
            in_word = false;
            continue;
        }
        in_word = true;
        if (c == '\\' && i + 1 < value.size()) {
            cur.append(value.substr(i, 2));
            ++i;
        } else if (quote && c == quote) {
            quote = 0;
        } else if (!quote && (c == '"' || c == '\'')) {
            quote = c;
        } else if (c == '"') {
            cur += "\\\"";  // inside single quotes: escaped for the double quotes it goes into
        } else {
            cur += c;
        }
    }
    if (in_word) out.push_back(cur);
    return out;
}

std::vector<std::string> preload_entries(std::string_view value) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < value.size()) {
        size_t b = value.find_first_not_of(" \t:", i);
        if (b == std::string_view::npos) break;
        size_t e = value.find_first_of(" \t:", b);
        if (e == std::string_view::npos) e = value.size();
        out.emplace_back(value.substr(b, e - b));
        i = e;
    }
    return out;
}

OwnEnvironment read_unit_files(const std::string& root, const std::string& unit) {
    OwnEnvironment env;
    std::string fragment;
    std::string template_name;
    size_t at = unit.find('@');
    if (at != std::string::npos) template_name = unit.substr(0, at + 1) + unit.substr(unit.rfind('.'));
    for (const std::string& name : {unit, template_name}) {
        if (name.empty()) continue;
        for (const char* dir : kSearchPath) {
            std::string p = resolve(root, root + dir + "/" + name, &env.masked);
            if (env.masked) return env;
            if (!p.empty()) {
                fragment = p;
                break;
            }
        }
        if (!fragment.empty()) break;
    }
    if (fragment.empty()) return env;
    env.found = true;
    std::string text;
    if (int err = read_file(fragment, &text)) {
        env.error = describe(fragment, err);
        return env;
    }
    apply_settings(text, &env);

    // Drop-ins sort by file name across all their directories; a file in a
    // higher-priority directory hides one of the same name below it.
    std::map<std::string, std::string> drop_ins;
    for (const char* dir : kSearchPath) {
        for (const std::string& sub : drop_in_dirs(unit)) {
            std::string d = root + dir + "/" + sub;
            struct stat st;
            if (stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
            std::unique_ptr<DIR, int (*)(DIR*)> dp(opendir(d.c_str()), closedir);
            if (!dp) continue;
            while (dirent* e = readdir(dp.get())) {
                std::string n = e->d_name;
                if (n.size() <= 5 || n.compare(n.size() - 5, 5, ".conf") != 0) continue;
                if (n == kDropInName) continue;
                drop_ins.emplace(n, d + "/" + n);
            }
        }
    }
    for (const auto& [name, path] : drop_ins) {
        bool masked = false;
        std::string p = resolve(root, path, &masked);
        if (p.empty() || read_file(p, &text) != 0) continue;
        apply_settings(text, &env);
    }
    return env;
}

OwnEnvironment ask_manager(const std::string& unit) {
    OwnEnvironment env;
    Bus bus = open_system_bus(&env.error);
    if (!bus) return env;
    BusError err;
    sd_bus_message* raw = nullptr;
    int r = sd_bus_call_method(bus.get(), kManager, kManagerPath, kManagerInterface, "LoadUnit", &err.e, &raw,
                               "s", unit.c_str());
    Message reply(raw);
    if (r < 0) {
        env.error = "LoadUnit " + unit + ": " + err.text(r);
        return env;
    }
    const char* path = nullptr;
    r = sd_bus_message_read(reply.get(), "o", &path);
    if (r < 0) {
        env.error = std::string("LoadUnit reply: ") + std::strerror(-r);
        return env;
    }
    std::string object = path;
    char* state = nullptr;
    r = sd_bus_get_property_string(bus.get(), kManager, object.c_str(), "org.freedesktop.systemd1.Unit",
                                   "LoadState", &err.e, &state);
    if (r < 0) {
        env.error = "LoadState of " + unit + ": " + err.text(r);
        return env;
    }
    std::string load_state = state;
    std::free(state);
    env.masked = load_state == "masked";
    env.found = load_state != "not-found" && !env.masked;
    if (!env.found) return env;

    char** strv = nullptr;
    r = sd_bus_get_property_strv(bus.get(), kManager, object.c_str(), "org.freedesktop.systemd1.Service",
                                 "Environment", &err.e, &strv);
    if (r < 0) {
        env.error = "Environment of " + unit + ": " + err.text(r);
        return env;
    }
    for (char** p = strv; p && *p; ++p) {
        if (std::strncmp(*p, "LD_PRELOAD=", 11) == 0) {
            env.has_ld_preload = true;
            env.ld_preload = unit_syntax(*p + 11);
        }
    }
    free_strv(strv);

    // EnvironmentFiles is a(sb): any entry means variables we cannot see.
    Message files;
    raw = nullptr;
    r = sd_bus_get_property(bus.get(), kManager, object.c_str(), "org.freedesktop.systemd1.Service",
                            "EnvironmentFiles", &err.e, &raw, "a(sb)");
    files.reset(raw);
    if (r >= 0 && sd_bus_message_enter_container(files.get(), 'a', "(sb)") > 0) {
        const char* file = nullptr;
        int ignore_errors = 0;
        env.environment_file = sd_bus_message_read(files.get(), "(sb)", &file, &ignore_errors) > 0;
    }
    return env;
}

std::string render_drop_in(std::string_view value) {
    std::string text = kDropInTemplate;
    const std::string placeholder = "@BTM_LD_PRELOAD@";
    for (size_t p = text.find(placeholder); p != std::string::npos; p = text.find(placeholder, p + value.size()))
        text.replace(p, placeholder.size(), value);
    return text;
}

bool systemd_running() { return sd_booted() > 0; }

std::string reload_manager() {
    std::string error;
    Bus bus = open_system_bus(&error);
    if (!bus) return error;
    BusError err;
    sd_bus_message* raw = nullptr;
    int r = sd_bus_call_method(bus.get(), kManager, kManagerPath, kManagerInterface, "Reload", &err.e, &raw, "");
    Message reply(raw);
    if (r < 0) return "Reload: " + err.text(r);
    return {};
}

}  // namespace btmctl::units
