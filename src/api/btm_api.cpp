// The prefixed btm_* API: the same semantics as the libc entry points, always
// served by btmalloc whether or not the libc symbols are overridden.
#include "api/entry.h"
#include "btmalloc.h"
#include "core/globals.h"
#include "features/cold.h"
#include "features/mesh.h"
#include "features/stats.h"

using namespace btm;

extern "C" {

BTM_EXPORT void* btm_malloc(size_t n) { return malloc_fast(n, BTM_RA()); }
BTM_EXPORT void* btm_calloc(size_t count, size_t size) { return calloc_impl(count, size, BTM_RA()); }
BTM_EXPORT void* btm_realloc(void* p, size_t n) { return realloc_impl(p, n, BTM_RA()); }
BTM_EXPORT void* btm_reallocarray(void* p, size_t count, size_t size) {
    return api::reallocarray_impl(p, count, size, BTM_RA());
}
BTM_EXPORT void btm_free(void* p) { free_fast(p, BTM_RA()); }
BTM_EXPORT void* btm_aligned_alloc(size_t align, size_t n) { return api::memalign_impl(align, n, BTM_RA()); }
BTM_EXPORT int btm_posix_memalign(void** out, size_t align, size_t n) {
    return api::posix_memalign_impl(out, align, n, BTM_RA());
}
BTM_EXPORT void* btm_memalign(size_t align, size_t n) { return api::memalign_impl(align, n, BTM_RA()); }
BTM_EXPORT size_t btm_usable_size(const void* p) { return usable_size(p, "btm_usable_size()", BTM_RA()); }

BTM_EXPORT int btm_stats(struct btm_stats* out) {
    if (!out || out->version != BTM_STATS_VERSION) return -1;
    stats::fill(out);
    return 0;
}

BTM_EXPORT void btm_heap_profile(int fd) { stats::profile(fd); }

BTM_EXPORT size_t btm_trim(void) { return trim_impl(); }

BTM_EXPORT size_t btm_pageout_cold(unsigned min_age_seconds) { return cold::pageout(min_age_seconds); }

BTM_EXPORT size_t btm_compact(void) {
    if (!g.initialized) init();
    return mesh::compact();
}

BTM_EXPORT unsigned btm_partition_of_caller(void) {
    if (!g.initialized) init();
    return partition::bits_of(BTM_RA()) >> kClassBits;
}

}  // extern "C"
