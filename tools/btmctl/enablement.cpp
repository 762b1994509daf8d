#include "enablement.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "files.h"

namespace btmctl {
namespace {

// "--name VALUE" or "--name=VALUE".  Returns true when ARGS[*i] is that
// option, leaving its value in *value (or sets *missing).
bool option(Args args, size_t* i, std::string_view name, std::string* value, bool* missing) {
    std::string_view a = args[*i];
    if (a == name) {
        if (*i + 1 >= args.size()) {
            *missing = true;
            return true;
        }
        *value = args[++*i];
        return true;
    }
    if (a.size() > name.size() && a.substr(0, name.size()) == name && a[name.size()] == '=') {
        *value = std::string(a.substr(name.size() + 1));
        return true;
    }
    return false;
}

}  // namespace

std::string parse_target(std::string_view command, Args args, Target* t) {
    std::string cmd(command);
    bool have_preload_file = false;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        bool missing = false;
        std::string value;
        if (a == "--system") {
            t->system = true;
        } else if (a == "--no-reload") {
            t->reload = false;
        } else if (a == "--drop-comments" && command == "enable") {
            t->drop_comments = true;
        } else if (option(args, &i, "--root", &value, &missing)) {
            if (missing || value.empty()) return cmd + ": --root needs a DIR";
            while (value.size() > 1 && value.back() == '/') value.pop_back();
            t->root = value == "/" ? "" : value;
        } else if (option(args, &i, "--library", &value, &missing)) {
            if (missing || value.empty()) return cmd + ": --library needs a PATH";
            t->library = value;
        } else if (option(args, &i, "--preload-file", &value, &missing)) {
            if (missing || value.empty()) return cmd + ": --preload-file needs a FILE";
            t->preload_file = value;
            have_preload_file = true;
        } else if (!a.empty() && a[0] == '-') {
            return cmd + ": unknown option '" + std::string(a) + "'";
        } else {
            t->units.emplace_back(a);
        }
    }
    if (t->system && !t->units.empty()) return cmd + ": give either --system or UNIT names, not both";
    if (!t->system && t->units.empty()) return cmd + ": expected --system or a UNIT";
    if (have_preload_file && !t->system) return cmd + ": --preload-file goes with --system";
    if (t->drop_comments && !t->system) return cmd + ": --drop-comments goes with --system";
    return {};
}

std::string preload_file_path(const Target& t, bool* via_link) {
    std::string path = t.preload_file.empty() ? t.root + std::string(kPreloadFile) : t.preload_file;
    if (via_link) *via_link = false;
    for (int depth = 0; depth < 16; ++depth) {
        char target[PATH_MAX];
        ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
        if (n < 0) break;  // not a link (or gone): this is the file
        target[n] = '\0';
        if (via_link) *via_link = true;
        path = target[0] == '/' ? t.root + target : dir_name(path) + "/" + target;
    }
    return path;
}

preload::Matcher ours(const Target& t) {
    std::string root = t.root;
    std::string library = t.library;
    struct stat lib_st;
    bool have_lib = stat((root + library).c_str(), &lib_st) == 0;
    return [=](std::string_view entry) {
        if (entry == library) return true;
        if (!have_lib || entry.empty() || entry[0] != '/') return false;
        struct stat st;
        return stat((root + std::string(entry)).c_str(), &st) == 0 && st.st_dev == lib_st.st_dev &&
               st.st_ino == lib_st.st_ino;
    };
}

std::string check_library(const Target& t, bool strict) {
    const std::string& lib = t.library;
    if (lib.empty() || lib[0] != '/') return "the library must be an absolute path: " + lib;
    if (lib.find_first_of(" \t\n:#\"'\\%") != std::string::npos)
        return "the library path must not contain blanks, ':', '#', quotes, '\\' or '%': " + lib;
    std::string on_disk = t.root + lib;
    int fd = open(on_disk.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "cannot open the library: " + describe(on_disk, errno);
    char magic[4] = {};
    ssize_t n = read(fd, magic, sizeof magic);
    struct stat st;
    int rc = fstat(fd, &st);
    close(fd);
    if (rc != 0 || !S_ISREG(st.st_mode)) return on_disk + ": not a regular file";
    if (n != 4 || std::memcmp(magic, "\177ELF", 4) != 0) return on_disk + ": not an ELF shared library";
    if (!strict) return {};
    // Whoever can write the library, or replace it, runs code in every
    // process, setuid ones included.
    char real[PATH_MAX];
    if (!realpath(on_disk.c_str(), real)) return "cannot resolve " + describe(on_disk, errno);
    std::string path = real;
    while (true) {
        struct stat s;
        if (stat(path.c_str(), &s) != 0) return "cannot check " + describe(path, errno);
        if (s.st_uid != 0 || (s.st_mode & (S_IWGRP | S_IWOTH)))
            return path + " is not owned by root or is writable by others: refusing to preload " + lib +
                   " into every process";
        if (path == "/") break;
        path = dir_name(path);
    }
    return {};
}

}  // namespace btmctl
