#include "features/introspect.h"

#include <cstddef>

#include "core/boot.h"
#include "core/central.h"
#include "core/chunk.h"
#include "core/globals.h"
#include "core/large.h"
#include "core/partition.h"
#include "core/size_classes.h"

namespace btm::introspect {
namespace {

template <class T>
constexpr uint32_t u32(T v) {
    return uint32_t(v);
}

constexpr Profile profile_constants() {
    Profile p{};
    p.magic = kProfileMagic;
    p.version = kProfileVersion;
    p.size = u32(sizeof(Profile));
    p.class_bits = kClassBits;
    p.nclasses = kNumClasses;
    p.central_stride = u32(sizeof(Central));
    p.central_out_bytes = u32(offsetof(Central, out_bytes));
    for (uint32_t c = 0; c < kNumClasses; ++c) p.class_size[c] = kClassSize[c];
    return p;
}

}  // namespace
}  // namespace btm::introspect

using btm::introspect::Descriptor;
using btm::introspect::Profile;
using btm::introspect::u32;
namespace chunks = btm::chunks;

// Everything a reader needs to know at compile time is a constant here: no
// relocation for ld.so to apply.  The addresses follow at publish(), on the
// page of .data that init writes anyway.  The library writes the object
// under a hidden name: an access through the exported one would be a
// symbol lookup at every process start.
extern "C" {
Descriptor btm_introspect_data = {
    .magic = btm::introspect::kMagic,
    .version = btm::introspect::kVersion,
    .size = u32(sizeof(Descriptor)),
    .ready = 0,
    .page_shift = 0,
    .accepts_pageout = 0,
    .chunk_size = btm::kChunkSize,
    .regions = 0,
    .nregions = 0,
    .registry = 0,
    .nchunks = 0,
    .clock_base = 0,
    .max_regions = chunks::kMaxRegions,
    .max_chunks = chunks::kMaxChunks,
    .region_stride = u32(sizeof(chunks::Region)),
    .region_base = u32(offsetof(chunks::Region, base)),
    .region_size = u32(offsetof(chunks::Region, size)),
    .region_used = u32(offsetof(chunks::Region, used)),
    .group_stride = u32(sizeof(chunks::Group)),
    .group_entries = u32(sizeof(chunks::Group::entries) / sizeof(chunks::Entry)),
    .group_entries_offset = u32(offsetof(chunks::Group, entries)),
    .entry_stride = u32(sizeof(chunks::Entry)),
    .entry_chunk = u32(offsetof(chunks::Entry, chunk)),
    .chunk_magic = btm::kChunkMagic,
    .chunk_magic_at = u32(offsetof(btm::ChunkHeader, magic)),
    .chunk_npages = u32(offsetof(btm::ChunkHeader, npages)),
    .chunk_first_page = u32(offsetof(btm::ChunkHeader, first_page)),
    .chunk_released = u32(offsetof(btm::ChunkHeader, released)),
    .chunk_free_bits = u32(offsetof(btm::ChunkHeader, free_bits)),
    .chunk_pagemap = u32(offsetof(btm::ChunkHeader, pagemap)),
    .chunk_slabs = u32(offsetof(btm::ChunkHeader, slabs)),
    .max_pages_per_chunk = btm::kMaxPagesPerChunk,
    .pagemap_offset_shift = 32,
    .slab_stride = u32(sizeof(btm::Slab)),
    .slab_npages = u32(offsetof(btm::Slab, npages)),
    .slab_epoch = u32(offsetof(btm::Slab, epoch)),
    .last_pageout_realtime = 0,
    .last_pageout_bytes = 0,
    .pageouts = 0,
};
BTM_EXPORT extern Descriptor btm_introspect_v1 __attribute__((alias("btm_introspect_data")));
Profile btm_profile_data = btm::introspect::profile_constants();
BTM_EXPORT extern Profile btm_profile_v1 __attribute__((alias("btm_profile_data")));
}

namespace btm::introspect {

static_assert(sizeof(ChunkHeader::released) == 1 && sizeof(Slab::npages) == 2 && sizeof(Slab::epoch) == 4,
              "the descriptor's readers assume these widths: change its version with them");
static_assert(pe_offset(uint64_t(1) << 32) == 1, "pagemap_offset_shift");
static_assert(kNumClasses <= kProfileClasses && sizeof(Central::out_bytes) == 8 &&
                  sizeof(*partition::g_site) == 8 && sizeof(*partition::g_shared) == 1 &&
                  sizeof(g_events.foreign_frees) == 8,
              "the profile's readers assume these: change its version with them");

void publish() {
    Descriptor& d = btm_introspect_data;
    d.regions = reinterpret_cast<uintptr_t>(chunks::regions);
    d.nregions = reinterpret_cast<uintptr_t>(&chunks::nregions);
    d.registry = reinterpret_cast<uintptr_t>(chunks::registry);
    d.nchunks = reinterpret_cast<uintptr_t>(&chunks::nchunks);
    d.max_chunks = chunks::max_chunks;
    Profile& p = btm_profile_data;
    p.central = reinterpret_cast<uintptr_t>(g_central);
    p.used = reinterpret_cast<uintptr_t>(central::g_used);
    p.site = reinterpret_cast<uintptr_t>(partition::g_site);
    p.shared = reinterpret_cast<uintptr_t>(partition::g_shared);
    p.foreign_frees = reinterpret_cast<uintptr_t>(&g_events.foreign_frees);
    p.invalid_frees = reinterpret_cast<uintptr_t>(&g_events.invalid_frees);
    p.npart = g.npart;
    __atomic_store_n(&p.ready, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&d.ready, 1, __ATOMIC_RELEASE);
}

void publish_boot(bool accepts_pageout) {
    Descriptor& d = btm_introspect_data;
    d.page_shift = g.page_shift;
    d.accepts_pageout = accepts_pageout;
    d.clock_base = reinterpret_cast<uintptr_t>(&chunks::clock_base);
    Profile& p = btm_profile_data;
    large::Layout big = large::layout();
    p.large_table = big.table;
    p.large_capacity = big.capacity;
    p.large_stride = big.stride;
    p.large_addr = big.addr;
    p.large_size = big.size;
    p.large_site = big.site;
    p.large_epoch = big.epoch;
    p.large_freed = big.freed;
    boot::Layout l = boot::layout();
    p.boot_bytes = l.bytes;
    p.boot_top = l.top;
    p.boot_marks = l.marks;
    p.boot_spans = l.spans;
    p.boot_span_bytes = l.span_bytes;
    p.boot_granule = l.granule;
    p.boot_marks_stride = l.marks_stride;
    __atomic_store_n(&p.boot_ready, 1, __ATOMIC_RELEASE);
}

}  // namespace btm::introspect
