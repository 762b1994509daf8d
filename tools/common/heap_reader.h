// Reads a btmalloc process's heap tables from outside it: finds the
// introspection descriptor (src/features/introspect.h) through the dynamic
// symbol table of a mapped library file, then reads the descriptor and the
// chunk tables with process_vm_readv.  Shared by btm-pageout and btmctl.
//
// Nothing here trusts the other process: every count, offset and address it
// reads is checked against the descriptor's limits and the heap reservation,
// so a torn or hostile table can make a read fail, never make the caller
// act outside the reservation.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "features/introspect.h"

namespace btm_heap {

using Descriptor = btm::introspect::Descriptor;
using Profile = btm::introspect::Profile;

enum class Found {
    kYes,            // a descriptor of a version this reader knows
    kNotBtmalloc,    // no mapped file exports it (nor an older btmalloc's symbols)
    kTooOld,         // a btmalloc that predates the descriptor
    kUnknownVersion, // a descriptor of another version
    kNoAccess,       // its maps or memory cannot be read (another user's process)
    kGone,           // the process exited
};

// One line of /proc/PID/maps that maps a file.
struct Mapping {
    uint64_t start = 0, end = 0, offset = 0;
    dev_t dev = 0;
    ino_t ino = 0;
    std::string path;
};

// The file mappings of `pid`; false with the errno in *err (ESRCH: a
// kernel thread, a zombie or a process gone).
bool parse_maps(pid_t pid, std::vector<Mapping>* out, int* err);

struct Located {
    uint64_t addr = 0;  // of the descriptor in the process
    Descriptor d{};
    std::string library;  // the mapped file that exports it
    uint64_t profile_addr = 0;  // of its profile section, 0 if it has none
    bool large = false;  // its profile section locates the large-block table (even before the heap exists)
};

// Finds and reads the descriptor of `pid`.  `why` says what went wrong for
// anything but kYes; for kNotBtmalloc it is empty unless the process maps a
// file named like the library (an impostor, or a file that is not ELF).
Found locate(pid_t pid, Located* out, std::string* why);

// Re-reads the descriptor at a known address (fresh run-time fields).
bool reread(pid_t pid, Located* loc);

struct Range {
    uint64_t addr, len;
};

// The data pages of slabs untouched for at least min_age seconds, merged
// where adjacent, as chunks::cold_ranges computes them in the process, then
// the large blocks made at least min_age seconds ago (large::cold_ranges).
// Stamps are CLOCK_MONOTONIC_COARSE seconds in the process's time
// namespace; a slab stamped before the process's clock started counts from
// that start, or from the process's start time if the clock never started.
// False with `why` if the tables cannot be read or do not add up.
bool cold_ranges(pid_t pid, const Located& loc, unsigned min_age, std::vector<Range>* out, std::string* why);

// The profile section of a located process, checked: false if it has
// none, or one of another version.
bool read_profile(pid_t pid, const Located& loc, Profile* p);

// One live large block: its mapping, call site and allocation stamp.
struct LargeBlock {
    uint64_t addr = 0, size = 0, site = 0;
    uint32_t epoch = 0;
};
// The live large blocks of a library whose profile section is `p` (from
// read_profile); false if the table cannot be read whole or does not add up.
bool read_large(pid_t pid, const Profile& p, uint32_t page_shift, std::vector<LargeBlock>* out);

// Writes the result of a pageout into the descriptor's tool words.
bool record_pageout(pid_t pid, const Located& loc, uint64_t bytes);

// Whole bytes of [addr, addr + n) or false.
bool read_memory(pid_t pid, uint64_t addr, void* buf, size_t n);

}  // namespace btm_heap
