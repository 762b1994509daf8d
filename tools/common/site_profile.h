// The live bytes and blocks of each call site of a btmalloc process, read
// from outside through the library's profile section
// (src/features/introspect.h) with process_vm_readv.  The process is not
// stopped: the counters are read while it runs, so the figures are a
// snapshot in which each counter is exact but the set is not taken at one
// instant (a block moving between two sites' counters in the middle of a
// read is not possible: a block's bytes stay with the pair that made it).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "heap_reader.h"

namespace btm_heap {

inline constexpr uint32_t kStartupArena = UINT32_MAX;    // the partition of start-up blocks
inline constexpr uint32_t kLargeBlocks = UINT32_MAX - 1;  // ... of large blocks (their own mappings)

struct SiteUsage {
    uint32_t partition = 0;  // kStartupArena, kLargeBlocks: outside the partitions' slabs
    uint64_t site = 0;     // return address in the process; 0 = none recorded
    bool shared = false;   // other call sites fell into the partition too
    uint64_t bytes = 0, blocks = 0;
};

// Partitions with live bytes, in partition order, then the call sites of
// the live blocks of the start-up arena (a process in its start-up phase
// has only those and large blocks), then those of large blocks.  False
// with `why` if the
// library has no profile section, its tables do not add up, or the process
// went away (then *gone is set).
bool read_sites(pid_t pid, const Located& loc, std::vector<SiteUsage>* out, std::string* why, bool* gone);

// The process's heap in two figures: the bytes of live blocks (the sum of
// read_sites) and the memory committed for them: chunks * chunk size, and
// the large blocks' mappings.  With the library's counts of foreign and
// invalid frees.
struct HeapTotals {
    uint64_t live = 0, committed = 0;
    uint64_t foreign_frees = 0, invalid_frees = 0;
};
bool read_totals(pid_t pid, const Located& loc, HeapTotals* out, std::string* why, bool* gone);

// Where an address lies: the mapped file and the offset in it (the
// "module+0xoff" that malloc_stats prints).  Empty path if in no file.
struct ModuleOffset {
    std::string path;
    uint64_t offset = 0;
};
ModuleOffset module_of(const std::vector<Mapping>& maps, uint64_t addr);


}  // namespace btm_heap
