// Small file helpers for the commands that change the system (enable,
// disable): reading a whole file, and replacing one atomically so that a
// reader (ld.so starting any process, systemd loading units) sees either the
// old contents or the new, never a partial file.
#pragma once

#include <sys/types.h>

#include <string>

namespace btmctl {

// Reads PATH into *out.  Returns 0, or an errno value (ENOENT when it does
// not exist).
int read_file(const std::string& path, std::string* out);

// Replaces PATH with CONTENTS: a temporary file in the same directory, written
// and fsync'ed, given MODE, then renamed over PATH; the directory is fsync'ed
// after the rename.  Returns 0 or an errno value; on failure PATH is
// untouched and the temporary file removed.
int replace_file(const std::string& path, const std::string& contents, mode_t mode);

// Removes PATH; fsyncs its directory.  Returns 0 (also when PATH was already
// gone) or an errno value.
int remove_file(const std::string& path);

// The directory part of PATH ("." when there is none).
std::string dir_name(const std::string& path);

// "PATH: REASON" for an errno value.
std::string describe(const std::string& path, int err);

}  // namespace btmctl
