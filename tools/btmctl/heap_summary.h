// One line of allocator figures for a process (btmctl status): live and
// committed bytes, read from outside like `btmctl heap`, and their ratio.
#pragma once

#include <string>

namespace btmctl {

// "heap: live 12.3 MiB, committed 16.0 MiB (77% used)" or why not.
std::string heap_line(long pid);

}  // namespace btmctl
