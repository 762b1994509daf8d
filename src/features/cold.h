// Cold tiering: page out (MADV_PAGEOUT) the data pages of slabs the
// allocator has not touched for a while.  Slabs are stamped on slow paths
// only (refills take slots, flushes return them), so the hit paths pay
// nothing; an object on a paged-out slab stays valid and faults back in when
// the program touches it.  MADV_PAGEOUT keeps contents, so racing with a
// slab's reuse is harmless: at worst a page just used is read back in.
// btm-pageout does the same from outside the process, reading the tables
// through features/introspect.
#pragma once

#include <cstddef>

namespace btm::cold {

// Pages out slabs untouched for at least min_age seconds; returns the bytes
// submitted to the kernel.  Large blocks (their own mappings) are not
// considered.  Safe from any thread; not from a signal handler.
size_t pageout(unsigned min_age);

}  // namespace btm::cold
