// The allocation and free fast paths, inlined into every entry point so that
// the return address they key on is the entry point's caller.
//
// malloc hit: class lookup, partition hash, pop the bin's stack.  free hit:
// range compare, page-map load, (hardening) slot and double-free checks,
// push.
// No lock, no atomic, no initialisation check on either (see state.h).
#pragma once

#include "core/chunk.h"
#include "core/partition.h"
#include "core/size_classes.h"
#include "core/state.h"

namespace btm {

// Slow paths (alloc.cpp).
void* malloc_slow(size_t n, uintptr_t ra);
void* malloc_large(size_t n, size_t align, bool zero, uintptr_t ra);
void free_outside(void* p, uintptr_t ra);
void free_full(void* p, uint64_t entry);
// Never returns (it reports and aborts), but is not declared [[noreturn]]:
// free's hit path reaches it by a tail call and so needs no stack frame.
void double_free(void* p, uint64_t entry, uintptr_t ra);
[[noreturn]] void double_free_boot(void* p, uintptr_t ra);
// free() of a large block freed before (large.h): reports a double free
// unless the address was mapped again by someone else.
void large_freed_before(void* p, size_t size, bool cached, uintptr_t ra);
// A start-up block whose header fails its check, found by `fn` (boot.h).
[[noreturn]] void corrupted_boot_header(const void* p, const char* fn, uintptr_t ra);
void invalid_free(void* p);
// A page-map word that is not a plain slab page: no slab (invalid free) or
// a draining slab.
void free_unusual(void* p, uint64_t e, uintptr_t ra);
// malloc's out-of-line path (see kDivert*).
void* malloc_diverted(size_t n, uintptr_t ra);

// Pops the top of a bin's stack.  The unlikely branch is a tail call, so
// the hit path needs no stack frame.  The stack lives in the thread's cache,
// out of reach of a write after free: nothing a program writes into a freed
// slot changes what malloc hands out next.  With hardening the slot's free
// mark is cleared (see free_fast): a store to a line the caller is about to
// write anyway.
BTM_INLINE void* bin_pop(Bin* b, size_t n, uintptr_t ra) {
    uint32_t k = b->count;
    if (BTM_UNLIKELY(k == 0)) return malloc_slow(n, ra);
    void* p = b->slots[k - 1];
    b->count = k - 1;
    if constexpr (kHardening) clear_mark(p);
    return p;
}

// Up to 4 KiB (nearly every request) one size compare leads to the class
// table; the large-block test is made only past it.
BTM_INLINE void* malloc_fast(size_t n, uintptr_t ra) {
    unsigned cls;
    if (BTM_LIKELY(n <= kLutMax)) cls = g_class_lut[(n + 15) >> 4];
    else if (BTM_UNLIKELY(n > kMaxSmall)) return malloc_large(n, 0, false, ra);
    else cls = class_of_medium(n);
    if (BTM_UNLIKELY(g.divert)) return malloc_diverted(n, ra);
    uint32_t bin = partition::hash_bits(ra) | cls;
    return bin_pop(&t_state.tc->bins[bin], n, ra);
}

BTM_INLINE void free_fast(void* p, uintptr_t ra) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (BTM_UNLIKELY(!in_primary(a))) return free_outside(p, ra);
    ChunkHeader* c = chunk_of(a);
    uint64_t e = c->pagemap[(a & kChunkMask) >> hot_page_shift()];
    if (BTM_UNLIKELY(!pe_plain_slab(e))) return free_unusual(p, e, ra);
    if constexpr (kHardening) {
        if (BTM_LIKELY(g.checks)) {
            if (BTM_UNLIKELY(!is_slot_start(pe_class(e), pe_offset(e) + (a & hot_page_mask())))) return invalid_free(p);
            if (BTM_UNLIKELY(marked_free(p))) return double_free(p, e, ra);
        }
        mark_free(p);
    }
    Bin* b = &t_state.tc->bins[pe_bin(e)];
    uint32_t k = b->count;
    if (BTM_UNLIKELY(k >= b->max)) return free_full(p, e);
    b->slots[k] = p;
    b->count = k + 1;
}

// Usable size of a pointer of ours, 0 for a pointer that is not.  `fn` and
// `ra` name the caller in a report of a corrupted start-up block header.
size_t usable_size(const void* p, const char* fn, uintptr_t ra);
void* realloc_impl(void* p, size_t n, uintptr_t ra);
void* aligned_impl(size_t align, size_t n, uintptr_t ra);
void* calloc_impl(size_t count, size_t size, uintptr_t ra);
size_t trim_impl();

}  // namespace btm
