#include "core/forward.h"

#include <dlfcn.h>

#include "core/base.h"

namespace btm {

bool g_forward;
BTM_COLD_BSS RealAllocator g_real;  // filled only when forwarding

namespace forward {

namespace {
template <class F>
void find(F*& out, const char* name) {
    // Any allocation inside dlsym is served from the boot arena: init runs
    // with the depth counter raised.
    out = reinterpret_cast<F*>(dlsym(RTLD_NEXT, name));
}
}  // namespace

bool resolve() {
    find(g_real.malloc, "malloc");
    find(g_real.free, "free");
    find(g_real.calloc, "calloc");
    find(g_real.realloc, "realloc");
    find(g_real.memalign, "memalign");
    find(g_real.usable_size, "malloc_usable_size");
    find(g_real.trim, "malloc_trim");
    find(g_real.stats, "malloc_stats");
    find(g_real.mallinfo2, "mallinfo2");
    find(g_real.info, "malloc_info");
    return g_real.malloc && g_real.free && g_real.calloc && g_real.realloc && g_real.memalign &&
           g_real.usable_size;
}

}  // namespace forward
}  // namespace btm
