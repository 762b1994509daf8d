// Library-wide singletons that are not read on fast paths: the effective
// configuration and the counters of rare events.
#pragma once

#include <atomic>

#include "config/config.h"

namespace btm {

extern config::Values g_cfg;
extern bool g_heap_ok;  // false if no address space could be reserved

struct EventCounters {
    std::atomic<uint64_t> foreign_frees;
    std::atomic<uint64_t> invalid_frees;
    std::atomic<uint64_t> slow_mallocs;
    std::atomic<uint64_t> pageout_requests;
    std::atomic<uint64_t> pageout_bytes;
};
extern EventCounters g_events;

// Runs initialisation once (first slow path of the process).
void init();

}  // namespace btm
