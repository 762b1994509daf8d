// Every C++ operator new and delete.  The library has no C++ runtime of its
// own: when allocation fails, the program's new-handler and std::bad_alloc
// come from the program's C++ runtime, looked up by name on the first
// failure (a program that calls operator new has one loaded).  Sizes given
// to sized delete are hints, never trusted: the slab knows the real size.
#include <dlfcn.h>

#include <new>

#include "api/entry.h"
#include "features/report.h"

#if BTM_CFG_OVERRIDE_LIBC

using namespace btm;

namespace {

// std::get_new_handler and std::__throw_bad_alloc, found with dlsym when an
// allocation first fails rather than through weak references: ld.so resolves
// a weak reference when it loads the library, and a search for a symbol that
// is not there (no C++ runtime, as in most preloaded processes) visits every
// loaded object; these two cost each process start about 1,100
// instructions, for a path that runs only when memory is exhausted.
using GetNewHandler = std::new_handler (*)() noexcept;
using ThrowBadAlloc = void (*)();
struct CxxRuntime {
    GetNewHandler get_new_handler;
    ThrowBadAlloc throw_bad_alloc;
};

CxxRuntime cxx_runtime() {
    // 0: not looked up yet; 1: looked up (either pointer may be null).
    static int s_state;
    static GetNewHandler s_get;
    static ThrowBadAlloc s_throw;
    if (!__atomic_load_n(&s_state, __ATOMIC_ACQUIRE)) {
        // Two threads may both look up: same answer, stored twice.
        __atomic_store_n(&s_get, reinterpret_cast<GetNewHandler>(dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv")),
                         __ATOMIC_RELAXED);
        __atomic_store_n(&s_throw, reinterpret_cast<ThrowBadAlloc>(dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv")),
                         __ATOMIC_RELAXED);
        __atomic_store_n(&s_state, 1, __ATOMIC_RELEASE);
    }
    return {__atomic_load_n(&s_get, __ATOMIC_RELAXED), __atomic_load_n(&s_throw, __ATOMIC_RELAXED)};
}

BTM_COLD void* new_failed(size_t n, size_t align, uintptr_t ra, bool nothrow) {
    const CxxRuntime rt = cxx_runtime();
    for (;;) {
        std::new_handler h = rt.get_new_handler ? rt.get_new_handler() : nullptr;
        if (!h) break;
        h();  // may throw; unwind tables let it pass through this frame
        void* p = align > kAlignment ? aligned_impl(align, n, ra) : malloc_fast(n, ra);
        if (p) return p;
    }
    if (nothrow) return nullptr;
    if (rt.throw_bad_alloc) rt.throw_bad_alloc();
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

// What C++ programs call all the time (plain and sized new and delete) stays
// in the library's first 64 KiB of code; the nothrow and aligned forms are
// BTM_LATE, to leave it room (src/core/base.h).
BTM_EXPORT void* operator new(size_t n) { return new_impl(n, BTM_RA()); }
BTM_EXPORT void* operator new[](size_t n) { return new_impl(n, BTM_RA()); }
BTM_EXPORT BTM_LATE void* operator new(size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, BTM_RA()); }
BTM_EXPORT BTM_LATE void* operator new[](size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, BTM_RA()); }
BTM_EXPORT BTM_LATE void* operator new(size_t n, std::align_val_t a) { return new_aligned(n, a, BTM_RA(), false); }
BTM_EXPORT BTM_LATE void* operator new[](size_t n, std::align_val_t a) { return new_aligned(n, a, BTM_RA(), false); }
BTM_EXPORT BTM_LATE void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return new_aligned(n, a, BTM_RA(), true);
}
BTM_EXPORT BTM_LATE void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return new_aligned(n, a, BTM_RA(), true);
}

BTM_EXPORT void operator delete(void* p) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete[](void* p) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void operator delete(void* p, const std::nothrow_t&) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void operator delete[](void* p, const std::nothrow_t&) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete(void* p, size_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT void operator delete[](void* p, size_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void operator delete(void* p, std::align_val_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void operator delete[](void* p, std::align_val_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void operator delete(void* p, size_t, std::align_val_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void operator delete[](void* p, size_t, std::align_val_t) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { free_fast(p, BTM_RA()); }
BTM_EXPORT BTM_LATE void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    free_fast(p, BTM_RA());
}

#endif
