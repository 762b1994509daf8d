// `btmctl enable --system` and `btmctl enable UNIT...`: the administrator's
// explicit act that puts btmalloc under every program, or under one service.
#include <sys/stat.h>

#include <cerrno>
#include <iostream>

#include "command.h"
#include "enablement.h"
#include "files.h"
#include "units.h"

namespace btmctl {

const std::string_view kEnableUsage =
    "  btmctl enable --system [--library PATH] [--preload-file FILE] [--root DIR]\n"
    "                [--drop-comments]  add the library to /etc/ld.so.preload, after trial\n"
    "                                   runs of a few programs with it preloaded; with\n"
    "                                   --drop-comments, drop the comments glibc misreads\n"
    "  btmctl enable UNIT... [--library PATH] [--root DIR] [--no-reload]\n"
    "                                   preload it into services: writes\n"
    "                                   /etc/systemd/system/UNIT.d/50-btmalloc.conf\n";

namespace {

// Allocators whose names give them away; two in one process do not mix.
bool looks_like_allocator(std::string_view entry) {
    for (std::string_view name : {"malloc", "jemalloc", "tcmalloc", "mimalloc", "hoard", "snmalloc"})
        if (entry.find(name) != std::string_view::npos) return true;
    return false;
}

int enable_system(const Target& t) {
    std::string file = preload_file_path(t);
    bool strict = t.root.empty() && t.preload_file.empty();
    if (std::string problem = check_library(t, strict); !problem.empty()) {
        std::cerr << "btmctl: " << problem << '\n';
        return kExitProblems;
    }
    std::string text;
    int err = read_file(file, &text);
    if (err != 0 && err != ENOENT) {
        std::cerr << "btmctl: cannot read " << describe(file, err) << '\n';
        return kExitProblems;
    }
    size_t dropped = 0;
    if (std::vector<preload::Comment> misread = preload::misread_comments(text); !misread.empty()) {
        if (!t.drop_comments) {
            std::cerr << "btmctl: " << file << " has comments that glibc's loader misreads as library names\n"
                      << "btmctl: (it blanks only the first comment; every process then reports that it cannot\n"
                      << "btmctl: preload their words):\n";
            for (const preload::Comment& c : misread) std::cerr << "  " << file << ':' << c.line << ": " << c.text << '\n';
            std::cerr << "btmctl: remove them, or run again with --drop-comments; " << file << " is unchanged.\n";
            return kExitProblems;
        }
        text = preload::without_misread_comments(text);
        dropped = misread.size();
        std::cout << "dropping " << dropped << (dropped == 1 ? " comment" : " comments")
                  << " that glibc's loader misreads from " << file << '\n';
    }
    preload::Matcher is_ours = ours(t);
    std::string listed;
    for (const std::string& e : preload::entries(text))
        if (listed.empty() && is_ours(e)) listed = e;
    if (!listed.empty() && !dropped) {
        std::cout << "already enabled: " << file << " lists " << listed << '\n';
        return kExitOk;
    }
    if (!listed.empty()) {
        std::cout << file << " already lists " << listed << "; trial runs skipped\n";
    } else if (t.root.empty()) {
        std::vector<std::string> passed, notes;
        std::string failure = trial_runs(t.library, &passed, &notes);
        for (const std::string& n : notes) std::cerr << "btmctl: note: " << n << '\n';
        if (!failure.empty()) {
            std::cerr << "btmctl: refusing to enable: " << failure << '\n'
                      << "btmctl: " << file << " is unchanged.\n";
            return kExitProblems;
        }
        std::cout << "trial runs with " << t.library << " preloaded passed:";
        for (const std::string& p : passed) std::cout << ' ' << p;
        std::cout << '\n';
    } else {
        std::cout << "trial runs skipped: " << t.root << " is an offline tree\n";
    }
    for (const std::string& e : preload::entries(text))
        if (!is_ours(e) && looks_like_allocator(e))
            std::cerr << "btmctl: warning: " << file << " also preloads " << e
                      << ", which looks like another allocator; the one listed first serves malloc\n";

    struct stat st;
    mode_t mode = stat(file.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
    if ((err = replace_file(file, listed.empty() ? preload::with_entry(text, t.library) : text, mode)) != 0) {
        std::cerr << "btmctl: cannot write " << describe(file, err) << '\n';
        return kExitProblems;
    }
    std::cout << "enabled: " << file << " now lists " << (listed.empty() ? t.library : listed) << ".\n"
              << "Programs started from now on run on btmalloc; running ones keep their allocator\n"
              << "until restarted.  To undo: btmctl disable --system (see btmalloc(7)).\n";
    return kExitOk;
}

int make_dirs(const std::string& dir) {
    if (dir.empty() || dir == "/" || dir == ".") return 0;
    struct stat st;
    if (stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (int err = make_dirs(dir_name(dir))) return err;
    return mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST ? 0 : errno;
}

int enable_unit(const Target& t, const std::string& unit, bool live, bool* changed) {
    units::OwnEnvironment own;
    if (live) {
        own = units::ask_manager(unit);
        if (!own.error.empty()) {
            std::cerr << "btmctl: asking systemd about " << unit << ": " << own.error
                      << "; reading its unit files instead\n";
            own = units::read_unit_files(t.root, unit);
        }
    } else {
        own = units::read_unit_files(t.root, unit);
    }
    if (!own.error.empty()) {
        std::cerr << "btmctl: " << unit << ": " << own.error << '\n';
        return kExitProblems;
    }
    if (own.masked) {
        std::cerr << "btmctl: " << unit << " is masked\n";
        return kExitProblems;
    }
    if (!own.found) {
        std::cerr << "btmctl: " << unit << ": no such unit" << (t.root.empty() ? "" : " under " + t.root) << '\n';
        return kExitProblems;
    }
    preload::Matcher is_ours = ours(t);
    std::string value = units::merge_preload(t.library, own.ld_preload, is_ours);
    for (const std::string& e : units::preload_entries(own.ld_preload))
        if (!is_ours(e) && looks_like_allocator(e))
            std::cerr << "btmctl: warning: " << unit << " also preloads " << e
                      << ", which looks like another allocator; btmalloc goes first and serves malloc\n";
    if (own.environment_file)
        std::cerr << "btmctl: warning: " << unit
                  << " reads an EnvironmentFile=; an LD_PRELOAD set there replaces this one\n";

    // The manager's answer carries the environment only: the sandboxing
    // settings come from the unit files either way.
    std::cout << seccomp::verdict(unit, live ? units::read_unit_files(t.root, unit).sandboxing : own.sandboxing);

    std::string path = units::drop_in_path(t.root, unit);
    std::string text = units::render_drop_in(value);
    std::string current;
    if (read_file(path, &current) == 0 && current == text) {
        std::cout << "already enabled: " << path << '\n';
        return kExitOk;
    }
    if (int err = make_dirs(dir_name(path))) {
        std::cerr << "btmctl: cannot create " << describe(dir_name(path), err) << '\n';
        return kExitProblems;
    }
    if (int err = replace_file(path, text, 0644)) {
        std::cerr << "btmctl: cannot write " << describe(path, err) << '\n';
        return kExitProblems;
    }
    std::cout << "wrote " << path << " (LD_PRELOAD=" << value << ")\n";
    *changed = true;
    return kExitOk;
}

}  // namespace

void reload_units(const Target& t, bool changed) {
    if (!changed) return;
    if (!t.root.empty()) {
        std::cout << "offline tree " << t.root << ": systemd reads the change when it next starts there.\n";
    } else if (!units::systemd_running()) {
        std::cout << "systemd is not running on this machine (it is not PID 1): nothing to reload;\n"
                     "the change applies when systemd next loads its units.\n";
    } else if (!t.reload) {
        std::cout << "not reloading (--no-reload): run 'systemctl daemon-reload'.\n";
    } else if (std::string err = units::reload_manager(); !err.empty()) {
        std::cerr << "btmctl: asking systemd to reload failed: " << err << "; run 'systemctl daemon-reload'\n";
    } else {
        std::cout << "systemd reloaded its units.\n";
    }
}

int run_enable(Args args) {
    Target t;
    if (std::string problem = parse_target("enable", args, &t); !problem.empty()) return usage_error(problem);
    if (t.system) return enable_system(t);
    std::vector<std::string> names;
    for (const std::string& u : t.units) {
        std::string error;
        std::string unit = units::normalize(u, &error);
        if (unit.empty()) return usage_error("enable: " + error);
        names.push_back(unit);
    }
    if (std::string problem = check_library(t, false); !problem.empty()) {
        std::cerr << "btmctl: " << problem << '\n';
        return kExitProblems;
    }
    bool live = t.root.empty() && units::systemd_running();
    int status = kExitOk;
    std::vector<std::string> changed_units;
    for (const std::string& unit : names) {
        bool changed = false;
        if (enable_unit(t, unit, live, &changed) != kExitOk) status = kExitProblems;
        if (changed) changed_units.push_back(unit);
    }
    reload_units(t, !changed_units.empty());
    for (const std::string& unit : changed_units)
        std::cout << "Restart " << unit << " for its processes to run on btmalloc: systemctl restart " << unit << '\n';
    return status;
}

}  // namespace btmctl
