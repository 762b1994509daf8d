// The introspection descriptor: one exported, versioned struct that says
// where the allocator's tables are, so that a tool outside the process
// (btm-pageout, btmctl status) can read them with process_vm_readv and act
// with process_madvise, with nothing running inside the process: no signal,
// no handler, no thread interrupted.
//
// The reader finds the struct by the dynamic symbol btm_introspect_v1 in the
// mapped library file, checks magic, version and size, then reads only what
// the fields below name.  Offsets and strides are compile-time facts
// (offsetof/sizeof), so the reader needs no internal header; any change to
// the layout of the tables it walks is a new version.  This header is plain
// C layout on purpose: the tools include it for the struct alone.
//
// Fields marked "tool" are the only bytes an outside tool writes
// (process_vm_writev): the result of its last pageout, for btmctl status.
#pragma once

#include <stdint.h>

namespace btm::introspect {

inline constexpr uint64_t kMagic = 0x3176'7073'6e69'6d62ULL;  // "bminspv1", little-endian
inline constexpr uint32_t kVersion = 1;
inline constexpr char kSymbol[] = "btm_introspect_v1";

struct Descriptor {
    uint64_t magic;
    uint32_t version;
    uint32_t size;              // sizeof(Descriptor) of the writer
    // Set once the heap exists (0 before: no slab to page out yet).  Written
    // last, with a release store; the fields up to `accepts_pageout` and
    // `clock_base` are valid once it is non-zero, and from the start of the
    // process on if the profile section's `boot_ready` is set (large blocks
    // exist before the heap).
    uint64_t ready;
    uint32_t page_shift;
    uint32_t accepts_pageout;   // knob `pageout`: 0 = the process refuses
    uint64_t chunk_size;
    // Addresses in the process.
    uint64_t regions;           // Region[max_regions]
    uint64_t nregions;          // uint32_t
    uint64_t registry;          // Group[], max_chunks / group_entries of them
    uint64_t nchunks;           // uint32_t
    uint64_t clock_base;        // uint32_t, CLOCK_MONOTONIC_COARSE seconds; 0 = not started
    uint32_t max_regions, max_chunks;
    // Region: reserved [base, base + size), carved into chunks up to used.
    uint32_t region_stride, region_base, region_size, region_used;
    // Group: group_entries registry entries of entry_stride bytes at
    // group_entries_offset; an entry starts with the chunk's address.
    uint32_t group_stride, group_entries, group_entries_offset, entry_stride, entry_chunk;
    // ChunkHeader (at the chunk's address): magic word, page counts, the
    // released flag (bool), the free bitmap (1 = free page), the page map
    // (uint64_t per page: 0 = no slab, else the page's byte offset in its
    // slab in the high 32 bits) and the slab descriptors (slabs[p] describes
    // the slab whose first page is p).
    uint64_t chunk_magic;
    uint32_t chunk_magic_at, chunk_npages, chunk_first_page, chunk_released;
    uint32_t chunk_free_bits, chunk_pagemap, chunk_slabs, max_pages_per_chunk;
    uint32_t pagemap_offset_shift;
    // Slab: npages (uint16_t) and epoch (uint32_t, coarse seconds of the last
    // refill or flush; 0 = stamped before the clock started).
    uint32_t slab_stride, slab_npages, slab_epoch;
    // tool: written by btm-pageout after a pageout.
    uint64_t last_pageout_realtime;  // seconds since the epoch
    uint64_t last_pageout_bytes;     // bytes process_madvise accepted
    uint64_t pageouts;               // how many times
};

// The profile section (btmctl heap): a second exported struct, so that a
// btm-pageout that knows only the descriptor above reads the same bytes as
// before.  It says where the per-(partition, size class) byte counters and
// the partitions' call sites are, and where the large-block table is
// (btm-pageout reads it too, for the cold pages of large blocks).  A reader takes the live bytes of a
// partition from the `out_bytes` of its centrals that the `used` bits name
// and its blocks as bytes / class size; the site of a partition is the first
// return address seen there (`shared` set: later ones differed, as in hash
// mode, so the site is the likely one).
inline constexpr uint64_t kProfileMagic = 0x3176'666f'7270'6d62ULL;  // "bmprofv1", little-endian
inline constexpr uint32_t kProfileVersion = 2;  // 2: the large-block table
inline constexpr char kProfileSymbol[] = "btm_profile_v1";
inline constexpr uint32_t kProfileClasses = 64;

struct Profile {
    uint64_t magic;
    uint32_t version;
    uint32_t size;              // sizeof(Profile) of the writer
    uint64_t ready;             // as Descriptor::ready, for the fields below
    uint64_t central;           // Central[npart << class_bits]
    uint64_t used;              // uint64_t[npart]: bit c = central (p, c) used
    uint64_t site;              // uint64_t[npart]: return address, 0 = none
    uint64_t shared;            // uint8_t[npart]
    uint64_t foreign_frees;     // uint64_t: frees of pointers btmalloc never made
    uint64_t invalid_frees;     // uint64_t: frees of btmalloc pointers that are no block
    uint32_t npart;
    uint32_t class_bits, nclasses;
    uint32_t central_stride, central_out_bytes;  // uint64_t at that offset
    uint32_t boot_ready;        // the boot_* fields are set (at init, before any start-up block)
    // The boot arena (core/boot.h): blocks from boot_bytes to *boot_top;
    // Marks {starts, freed} of span s at boot_marks + (spans - 1 - s) *
    // marks_stride, bit i = granule i of the span; before each block its
    // size word (size in the low 32 bits) and its call site.
    uint64_t boot_bytes, boot_top, boot_marks;
    uint32_t boot_spans, boot_span_bytes, boot_granule, boot_marks_stride;
    uint32_t class_size[kProfileClasses];  // bytes of a block of each class
    // Large blocks (core/large.h), set with the boot_* fields: the table is
    // at *large_table (uint64_t), *large_capacity (uint64_t) entries of
    // large_stride bytes: address (0 = empty slot), mapping size (the
    // large_freed bit set: freed), call site, allocation stamp (uint32_t,
    // seconds as Slab::epoch).  The table moves when it grows: a reader
    // re-reads both words after the table and retries if they changed.
    uint64_t large_table, large_capacity;
    uint32_t large_stride, large_addr, large_size, large_site, large_epoch, large_freed;
};

// Fills the heap tables' fields once the heap exists (core/alloc.cpp's init).
void publish();
// Fills the fields valid from the start (the boot arena, the large-block
// table, whether the process accepts pageout), at init (the page is
// written then anyway).
void publish_boot(bool accepts_pageout);

}  // namespace btm::introspect
