// clone() children that inherited a held lock (RELIABILITY.md row 8).
//
// A child made by clone() without CLONE_VM runs no fork handler, so it
// inherits the allocator's locks in whatever state the parent's other
// threads left them, and one that is held will never be released.  In such
// a child orphaned() is true: its slow paths serve blocks from the boot
// arena, then from mappings of their own listed in orphan.cpp, and a free
// that would need the heap's locks leaks its block instead.  Such a child
// usually execs soon; nothing here needs to be fast.
//
// Invariant: while the process is not such a child, orphaned() costs a slow
// path one load and a compare.  `g_alive` points at a word set to 1 on a
// page the kernel wipes in every child of fork() or clone() without CLONE_VM
// (MADV_WIPEONFORK); the fork handler re-arms it after fork(), and check()
// re-arms it in a child that finds no lock held.
#pragma once

#include <cstddef>

namespace btm {

extern int* g_alive;    // null until a heap is about to be made (alloc.cpp)
bool init_lock_held();  // alloc.cpp

namespace orphan {

bool check();                         // the part of orphaned() past the token
void* alloc(size_t n, size_t align);  // null and ENOMEM when out of memory
bool release(void* p);                // free(); false if p is not one of alloc's
size_t usable(const void* p);         // 0 if p is not one of alloc's
void fork_child();                    // after fork(): re-arms, leaves orphan mode

}  // namespace orphan

inline bool orphaned() {
    int* alive = __atomic_load_n(&g_alive, __ATOMIC_ACQUIRE);
    return __builtin_expect(alive != nullptr && __atomic_load_n(alive, __ATOMIC_RELAXED) == 0, 0) &&
           orphan::check();
}

}  // namespace btm
