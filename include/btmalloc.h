/* btmalloc — call-site partitioned memory allocator.  Public C API.
 *
 * Every function here is safe to call before main, from any thread, and from
 * a process that preloads libbtmalloc.so.  The btm_* allocation functions
 * behave exactly like their libc counterparts (same errno, same edge cases)
 * but always use btmalloc, even when the libc symbols are not overridden.
 */
#ifndef BTMALLOC_H
#define BTMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BTMALLOC_VERSION_MAJOR 0
#define BTMALLOC_VERSION_MINOR 1

void *btm_malloc(size_t size);
void *btm_calloc(size_t count, size_t size);
void *btm_realloc(void *ptr, size_t size);
void *btm_reallocarray(void *ptr, size_t count, size_t size);
void btm_free(void *ptr);
void *btm_aligned_alloc(size_t alignment, size_t size);
int btm_posix_memalign(void **out, size_t alignment, size_t size);
void *btm_memalign(size_t alignment, size_t size);
size_t btm_usable_size(const void *ptr);

/* Counters of the whole process.  Byte figures are exact at the moment of the
 * call for committed/resident state and approximate (slab granularity) for
 * live bytes held in thread caches. */
struct btm_stats {
    uint64_t version;             /* set to BTM_STATS_VERSION by the caller  */
    uint64_t allocated_bytes;     /* bytes in slots handed out of slabs and large blocks */
    uint64_t large_bytes;         /* bytes in live large mappings              */
    uint64_t committed_bytes;     /* chunk bytes made usable (read/write)      */
    uint64_t reserved_bytes;      /* address space reserved up front           */
    uint64_t chunks;              /* 2 MiB chunks carved from the reservation  */
    uint64_t slabs;               /* live slabs                                */
    uint64_t partitions;          /* partitions in use (configured P)          */
    uint64_t thread_caches;       /* thread caches alive                       */
    uint64_t malloc_calls_slow;   /* malloc calls that left the fast path      */
    uint64_t foreign_frees;       /* free() of pointers btmalloc never gave out, ignored */
    uint64_t invalid_frees;       /* free() of interior/misaligned pointers into our heap, ignored */
    uint64_t large_cached_bytes;  /* freed large mappings kept for reuse       */
    uint64_t released_bytes_sync; /* bytes returned to the OS inline (madvise) */
    uint64_t released_bytes_async;/* bytes returned by the background thread   */
    uint64_t pageout_requests;    /* btm_pageout_cold() runs                   */
    uint64_t pageout_bytes;       /* bytes asked to be paged out               */
    uint64_t resident_bytes;      /* RSS of the process (from /proc/self/statm) */
    uint64_t dirty_bytes;         /* free pages not yet returned to the OS     */
    uint64_t free_chunks;         /* chunks with no slab (warm pool + released) */
    uint64_t reclaim_thread;      /* 1 if the background thread runs           */
    uint64_t reclaim_uring;       /* 1 if it releases pages through io_uring   */
    uint64_t prefault_bytes;      /* free pages faulted in ahead of a growing heap */
    uint64_t slabs_made;          /* slabs made from the page heap so far      */
    uint64_t kept_slab_bytes;     /* empty slabs kept for reuse until they age */
    uint64_t reserved_for_future[1];
};
#define BTM_STATS_VERSION 1

/* Fills *out; returns 0, or -1 if out is NULL or out->version is unknown. */
int btm_stats(struct btm_stats *out);

/* Writes a per-call-site report of live memory to the file descriptor. */
void btm_heap_profile(int fd);

/* Asks the kernel to page out slabs untouched for at least min_age_seconds.
 * Returns the number of bytes submitted for pageout. */
size_t btm_pageout_cold(unsigned min_age_seconds);

/* Returns free memory to the OS now; returns the number of bytes released. */
size_t btm_trim(void);

/* Mesh compaction (BTM_MESH=1); returns bytes of physical memory freed.
 * Beside other threads only where userfaultfd write-protection is allowed;
 * else 0 with errno EBUSY (ENOTSUP with mesh off).  Pointers stay valid. */
size_t btm_compact(void);

/* The partition the calling site maps to (diagnostics and tests). */
unsigned btm_partition_of_caller(void);

#ifdef __cplusplus
}
#endif

#endif /* BTMALLOC_H */
