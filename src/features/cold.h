// Cold tiering: page out (MADV_PAGEOUT) the data pages of slabs the
// allocator has not touched for a while, and large blocks made a while ago.
// Slabs are stamped on slow paths only (refills take slots, flushes return
// them), large blocks when they are made or moved, so the hit paths pay
// nothing; an object on a paged-out slab or large block stays valid and
// faults back in when the program touches it.  MADV_PAGEOUT keeps contents, so racing with a
// slab's reuse is harmless: at worst a page just used is read back in.
// btm-pageout does the same from outside the process, reading the tables
// through features/introspect.
#pragma once

#include <cstddef>

namespace btm::cold {

// Pages out slabs untouched for at least min_age seconds, and large blocks
// (their own mappings) made at least that long ago; returns the bytes
// submitted to the kernel.  Safe from any thread; not from a signal handler.
size_t pageout(unsigned min_age);

}  // namespace btm::cold
