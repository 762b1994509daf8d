// Fatal and diagnostic reports, written with raw write(2): no allocation, no
// stdio, safe in any state of the heap.  Call sites are printed as
// module+0xoffset (from /proc/self/maps) so they can be symbolised outside
// the process (addr2line -e module offset).
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::report {

// A small fixed buffer with append helpers.
struct Line {
    char buf[512];
    size_t n = 0;
    Line& str(const char* s);
    Line& hex(uint64_t v);
    Line& dec(uint64_t v);
    Line& site(uintptr_t addr);  // module+0xoff, or 0x... if unknown
    // module+0xoff, the module's build-id (hex, "-" if it has none) and
    // its path: what `btmctl heap --symbolize` needs to name a saved report.
    Line& site_with_build_id(uintptr_t addr);
    void emit(int fd = 2);
};

[[noreturn]] void fatal(Line& line);

}  // namespace btm::report
