// The boot arena: a lock-free bump allocator in static storage for the rare
// calls that must not enter the allocator proper -- calls nested inside our
// own slow paths (pthread_setspecific, pthread_atfork, a signal handler that
// interrupts a slow path) and calls made while initialisation runs.
//
// Invariant: boot blocks are never reused; free() recognises and ignores
// them, so they can never be handed out twice.  Each block has a 16-byte
// header holding its size, for realloc and malloc_usable_size.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::boot {

void* alloc(size_t n, size_t align);
size_t used();  // bytes handed out so far
bool owns(const void* p);
size_t usable(const void* p);

}  // namespace btm::boot
