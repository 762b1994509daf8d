// The three outputs of `btmctl heap`: a table sorted by live bytes, JSON,
// and the folded format flame-graph tools read (`module;function bytes`).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "symbolizer.h"

namespace btmctl::heap {

struct Site {
    btm_heap::SiteName name;
    uint64_t address = 0;  // in the process
    uint32_t partition = 0;
    bool shared = false;   // the partition also holds other sites' blocks
    uint64_t bytes = 0, blocks = 0;
};

struct Snapshot {
    long pid = 0;
    std::string comm, unit;
    double read_ms = 0;       // how long the reads took (the process ran on)
    double read_at = 0;       // when they ended, steady-clock seconds
    std::vector<Site> sites;  // sorted by bytes, largest first
};

// Reads and names the call sites of `pid` (tools/common); false with the
// reason ("process PID: ...") if it is gone, refused or not btmalloc.
bool snapshot(pid_t pid, Snapshot* s, std::string* reason);

uint64_t total_bytes(const Snapshot& s);
void print_table(std::ostream& out, const Snapshot& s, size_t top);
void print_json(std::ostream& out, const std::vector<Snapshot>& all, size_t top);
void print_folded(std::ostream& out, const Snapshot& s);

// Growth between two snapshots of one process `seconds` apart: the sites
// whose live bytes grew, fastest first (a leak grows steadily, so the
// leaking sites lead), then a line for the rest.
struct Growth {
    Site site;              // as in the second snapshot
    int64_t delta = 0;      // bytes
    double rate = 0;        // bytes per second
};
std::vector<Growth> growth(const Snapshot& before, const Snapshot& after, double seconds);
void print_growth(std::ostream& out, const Snapshot& after, const std::vector<Growth>& g, double seconds,
                  size_t top);
void print_growth_json(std::ostream& out, const Snapshot& after, const std::vector<Growth>& g, double seconds,
                       size_t top);

// Names the sites of a saved in-process report; 1 with a message on `err`
// if the file cannot be read or holds no site lines.
int symbolize_report(const std::string& file, std::ostream& out, std::ostream& err);

// A JSON string literal of `s`: quotes, backslashes and control characters
// escaped, bytes that are not UTF-8 replaced by U+FFFD.
std::string json_string(const std::string& s);

}  // namespace btmctl::heap
