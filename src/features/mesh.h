// Mesh compaction (knob mesh; Powers et al., "Mesh", PLDI 2019): two slabs
// of one (partition, size class) pair whose live slots do not overlap
// become one.  The source's live slots are copied into the target at the
// same offsets, the source's virtual pages are mapped onto the target's
// file pages (chunks are memfd-backed: chunk.h, os/memfd.h) and the
// source's own pages are punched out of the file.  Every pointer stays
// valid: the source's page-map entries say kPageMeshed and frees through
// them go to the target's descriptor, which serves both.
//
// A write to a source slot between its copy and the remap would be lost:
// beside other threads compact() write-protects each source (userfaultfd)
// where the process may, and otherwise meshes only while no other thread
// of the program exists (docs/DESIGN.md, "Mesh compaction").
#pragma once

#include <cstddef>

namespace btm::mesh {

// Before the heap is made: turns memfd backing on if the knob asks and the
// process may (no seccomp filter unless seccomp_async, memfd_create works),
// else says why in one verbose line.
void configure();
// Registers the fork handlers (before the heap's own: see mesh.cpp).
void register_fork();
// btm_compact(): meshes what it can; bytes of physical memory released.
// 0 with errno set when it may not run: ENOTSUP (mesh off), EBUSY (other
// threads).
size_t compact();

}  // namespace btm::mesh
