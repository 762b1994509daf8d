// Names for code addresses of another process, through elfutils' libdwfl:
// the modules' symbol tables, their separate debug info where installed
// (found by build-id under /usr/lib/debug/.build-id, or by debuglink), C++
// names demangled, file:line where there is line information.  Only the
// tools use it; the library prints module+0xoff and never names anything.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

namespace btm_heap {

struct SiteName {
    std::string module;    // base name of the mapped file, "" if in none
    uint64_t module_offset = 0;
    std::string function;  // demangled, "" if no symbol covers it
    uint64_t function_offset = 0;
    std::string file;      // source file, "" without line information
    int line = 0;
};

class Symbolizer {
public:
    // The modules `pid` maps now.  A process that cannot be read leaves
    // every name empty (module+0xoff comes from the heap reader then).
    explicit Symbolizer(pid_t pid);
    // No modules yet: add them with add_module (a saved report).
    Symbolizer();
    ~Symbolizer();
    Symbolizer(const Symbolizer&) = delete;
    Symbolizer& operator=(const Symbolizer&) = delete;

    // A site of a saved report: `file_offset` in the module at `path` if
    // that file has this build-id (hex), else in the debug file found by
    // the build-id under /usr/lib/debug/.build-id.  Only the module name
    // and offset if neither is there.
    SiteName name_in_module(const std::string& path, const std::string& build_id, uint64_t file_offset);

    // The name of a return address (the call is the byte before it).
    SiteName name(uint64_t return_address) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// "function+0xoff (module) file:line", or "module+0xoff" without a symbol.
std::string describe(const SiteName& n);

}  // namespace btm_heap
