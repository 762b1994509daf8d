// `btmctl disable --system` and `btmctl disable UNIT...`: undo enable,
// removing only what is ours.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>

#include "command.h"
#include "enablement.h"
#include "files.h"
#include "units.h"

namespace btmctl {

const std::string_view kDisableUsage =
    "  btmctl disable --system [--library PATH] [--preload-file FILE] [--root DIR]\n"
    "                                   remove the library's entry (only that) from\n"
    "                                   /etc/ld.so.preload\n"
    "  btmctl disable UNIT... [--root DIR] [--no-reload]\n"
    "                                   remove the services' 50-btmalloc.conf drop-ins\n";

namespace {

int disable_system(const Target& t) {
    bool via_link = false;
    std::string file = preload_file_path(t, &via_link);
    std::string text;
    int err = read_file(file, &text);
    if (err == ENOENT) {
        std::cout << "not enabled: " << file << " does not exist\n";
        return kExitOk;
    }
    if (err != 0) {
        std::cerr << "btmctl: cannot read " << describe(file, err) << '\n';
        return kExitProblems;
    }
    unsigned removed = 0;
    std::string rest = preload::without_entries(text, ours(t), &removed);
    if (removed == 0) {
        std::cout << "not enabled: " << file << " does not list " << t.library << '\n';
        for (const std::string& e : preload::entries(text))
            if (e.find("libbtmalloc") != std::string::npos)
                std::cout << "(it lists " << e << ": name it with --library to remove it)\n";
        return kExitOk;
    }
    // An emptied file is removed, unless a symbolic link leads to it: the
    // link is the administrator's, and a dangling one would look like a fault.
    bool remove = preload::is_blank(rest) && !via_link;
    if (remove) {
        err = remove_file(file);
    } else {
        struct stat st;
        mode_t mode = stat(file.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
        err = replace_file(file, rest, mode);
    }
    if (err != 0) {
        std::cerr << "btmctl: cannot write " << describe(file, err) << '\n';
        return kExitProblems;
    }
    std::cout << "disabled: removed " << t.library << " from " << file
              << (remove ? " (now empty, so removed)" : "") << ".\n"
              << "Programs started from now on use glibc's allocator; running ones keep btmalloc\n"
              << "until restarted.\n";
    return kExitOk;
}

}  // namespace

int run_disable(Args args) {
    Target t;
    if (std::string problem = parse_target("disable", args, &t); !problem.empty()) return usage_error(problem);
    if (t.system) return disable_system(t);
    std::vector<std::string> names;
    for (const std::string& u : t.units) {
        std::string error;
        std::string unit = units::normalize(u, &error);
        if (unit.empty()) return usage_error("disable: " + error);
        names.push_back(unit);
    }
    int status = kExitOk;
    std::vector<std::string> changed;
    for (const std::string& unit : names) {
        std::string path = units::drop_in_path(t.root, unit);
        struct stat st;
        if (lstat(path.c_str(), &st) != 0) {
            std::cout << "not enabled: " << path << " does not exist\n";
            continue;
        }
        if (int err = remove_file(path)) {
            std::cerr << "btmctl: cannot remove " << describe(path, err) << '\n';
            status = kExitProblems;
            continue;
        }
        rmdir(dir_name(path).c_str());  // only if nothing else is in it
        std::cout << "removed " << path << '\n';
        changed.push_back(unit);
    }
    reload_units(t, !changed.empty());
    for (const std::string& unit : changed)
        std::cout << "Restart " << unit << " for its processes to leave btmalloc: systemctl restart " << unit << '\n';
    return status;
}

}  // namespace btmctl
