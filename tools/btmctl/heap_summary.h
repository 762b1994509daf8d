// What btmctl's heap, status and metrics commands say of a process beside
// its heap: its systemd unit and name, and one line of allocator figures
// (live and committed bytes, read from outside like `btmctl heap`).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace btmctl {

// Every process ID in /proc now, ascending.
std::vector<pid_t> all_pids();

// The unit systemd placed the process in, "-" if none.
std::string unit_of(pid_t pid);
// /proc/PID/comm, "" if gone.
std::string comm_of(pid_t pid);

// "heap: live 12.3 MiB, committed 16.0 MiB (77% of it live)", the live
// bytes alone in the start-up phase, or why not.
std::string heap_line(long pid);

}  // namespace btmctl
