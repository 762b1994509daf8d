// Every C++ operator new and delete.  The library has no C++ runtime of its
// own: when allocation fails, the program's new-handler and std::bad_alloc
// come from the program's libstdc++, reached through weak references (a
// program that calls operator new has libstdc++ loaded).  Sizes given to
// sized delete are hints, never trusted: the slab knows the real size.
#include <new>

#include "api/entry.h"
#include "features/report.h"

#if BTM_CFG_OVERRIDE_LIBC

namespace std {
[[noreturn]] void __throw_bad_alloc() __attribute__((weak));
}
extern "C++" std::new_handler weak_get_new_handler() noexcept __asm__("_ZSt15get_new_handlerv")
    __attribute__((weak));

using namespace btm;

namespace {

BTM_NOINLINE void* new_failed(size_t n, size_t align, uintptr_t ra, bool nothrow) {
    for (;;) {
        std::new_handler h = weak_get_new_handler ? weak_get_new_handler() : nullptr;
        if (!h) break;
        h();  // may throw; unwind tables let it pass through this frame
        void* p = align > kAlignment ? aligned_impl(align, n, ra) : malloc_fast(n, ra);
        if (p) return p;
    }
    if (nothrow) return nullptr;
    if (std::__throw_bad_alloc) std::__throw_bad_alloc();
    report::Line line;
    line.str("btmalloc: operator new failed and no C++ runtime is loaded to throw std::bad_alloc");
    report::fatal(line);
}

BTM_INLINE void* new_impl(size_t n, uintptr_t ra) {
    void* p = malloc_fast(n, ra);
    return BTM_LIKELY(p) ? p : new_failed(n, 0, ra, false);
}
BTM_INLINE void* new_nothrow(size_t n, uintptr_t ra) {
    void* p = malloc_fast(n, ra);
    return BTM_LIKELY(p) ? p : new_failed(n, 0, ra, true);
}
BTM_INLINE void* new_aligned(size_t n, std::align_val_t al, uintptr_t ra, bool nothrow) {
    size_t a = size_t(al);
    void* p = api::memalign_impl(a, n, ra);
    return BTM_LIKELY(p) ? p : new_failed(n, a, ra, nothrow);
}

}  // namespace

BTM_EXPORT void* operator new(size_t n) { return new_impl(n, BTM_RA()); }
BTM_EXPORT void* operator new[](size_t n) { return new_impl(n, BTM_RA()); }
BTM_EXPORT void* operator new(size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, BTM_RA()); }
BTM_EXPORT void* operator new[](size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, BTM_RA()); }
BTM_EXPORT void* operator new(size_t n, std::align_val_t a) { return new_aligned(n, a, BTM_RA(), false); }
BTM_EXPORT void* operator new[](size_t n, std::align_val_t a) { return new_aligned(n, a, BTM_RA(), false); }
BTM_EXPORT void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return new_aligned(n, a, BTM_RA(), true);
}
BTM_EXPORT void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return new_aligned(n, a, BTM_RA(), true);
}

BTM_EXPORT void operator delete(void* p) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete[](void* p) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete(void* p, size_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete[](void* p, size_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete(void* p, std::align_val_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete(void* p, size_t, std::align_val_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete[](void* p, size_t, std::align_val_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    free_fast(p, BTM_RA());
}

#endif
