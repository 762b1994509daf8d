// What `btmctl enable` and `btmctl disable` share: their command line, the
// library they install, and how an entry is recognised as ours.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "command.h"
#include "preload_file.h"

namespace btmctl {

inline constexpr std::string_view kPreloadFile = "/etc/ld.so.preload";

struct Target {
    bool system = false;              // --system: /etc/ld.so.preload
    std::vector<std::string> units;   // or these services' drop-ins
    std::string root;                 // --root: an offline tree ("" = this system)
    std::string library = BTMCTL_LIBRARY;  // --library: the path written into files
    std::string preload_file;         // --preload-file (default ROOT/etc/ld.so.preload)
    bool reload = true;               // --no-reload: do not ask systemd to reload
    bool drop_comments = false;       // --drop-comments: those glibc misreads (enable --system)
};

// Parses the words after the command's name.  Returns "" or what is wrong.
std::string parse_target(std::string_view command, Args args, Target* target);

// The preload file to edit: a symbolic link is followed (an absolute target
// inside --root's tree), also to a target that does not exist yet, so that
// the link itself is never replaced.  *via_link tells whether it was one.
std::string preload_file_path(const Target& target, bool* via_link = nullptr);

// Recognises our entries: the library's path, or another path to the same
// file (/lib/... for /usr/lib/... on merged-/usr systems).
preload::Matcher ours(const Target& target);

// Checks the library before it goes into a file that every process (or a
// service) reads: an absolute path free of separators, naming an ELF file;
// with STRICT (the real /etc/ld.so.preload) also owned by root and writable
// by nobody else, as must be its directory.  Returns "" or the problem.
std::string check_library(const Target& target, bool strict);

// Runs a few programs with LIBRARY preloaded, each in a child with a clean
// environment and a time limit, and each once more without it: ordinary
// programs, the package manager, a threaded program and (as root) a
// set-user-ID one, with the library in a private /etc/ld.so.preload since
// LD_PRELOAD does not reach those.  Returns "" when every one behaved as it
// does without the library (exit status, output, no stderr of its own);
// else what went wrong, with what the program does without the library when
// that is not clean either.  *notes gets the trials that could not run and
// the programs that fail the same way without the library.
std::string trial_runs(const std::string& library, std::vector<std::string>* passed,
                       std::vector<std::string>* notes);

// After drop-ins changed (CHANGED): asks the running systemd to reload over
// D-Bus, or says why it does not (offline tree, systemd not running,
// --no-reload).
void reload_units(const Target& target, bool changed);

}  // namespace btmctl
