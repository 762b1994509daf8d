// Chunks, slabs and the page map.
//
// A chunk is 2 MiB of the reservation, aligned to 2 MiB, so the header of the
// chunk holding any pointer p of ours is at p & ~(2 MiB - 1).  The header's
// first pages hold all metadata; the remaining pages are data only, carved
// into slabs: runs of pages serving one (partition, size class) pair.
//
// Invariants:
// - pagemap[i] describes data page i: 0 (not in any slab: a free of a
//   pointer there is invalid) or the slab's bin index, size class and the
//   page's byte offset inside its slab.  It is written only
//   under the page-heap lock and only while no live slot lives on that page.
// - slabs[i] is the descriptor of the slab whose first page is i.  Slots are
//   never in the descriptor: the data pages are pure slots, so they can be
//   released or paged out on their own.
// - A slab's slots are: in its local free list, never handed out (>= bump),
//   or `used` (in a thread cache, with the user, or in flight on its remote
//   list).  `used` counts slots on the remote list until they are drained, so
//   used == 0 means no slot of the slab is reachable by anyone.
// - In intern mode a chunk's owner, once set by its first slab, never
//   changes: its pages serve only that partition's slabs, released or not.
#pragma once

#include <atomic>

#include "core/base.h"
#include "core/state.h"

namespace btm {

// One 64-bit word per data page; 0 means the page is in no slab (a free of
// a pointer there is invalid).  Otherwise: [0,16) bin index, [16,24) size
// class, [24,32) kind, [32,64) byte offset of the page in its slab.  Kind
// kPageDraining marks a sparse slab whose pair has others: frees into it go
// straight home instead of into a thread cache, so it empties and its pages
// go back.  The kind is advisory (readers may see it late), written under
// the central lock of the slab's pair.
inline constexpr uint64_t kPageSlab = 1;
inline constexpr uint64_t kPageDraining = 2;
// Kind kPageMeshed: the page's slab (the source) was meshed into another of
// its pair (the target, features/mesh.h): its virtual pages show the
// target's physical pages, and the target's descriptor serves both.  Bin,
// class and offset stay, so size and slot checks read the entry as before;
// a free translates the pointer to the target (mesh_target).
inline constexpr uint64_t kPageMeshed = 3;
inline constexpr uint64_t kKindMask = uint64_t(0xff) << 24;

BTM_INLINE constexpr uint64_t page_entry(uint32_t bin, uint32_t page_in_slab, uint32_t cls, uint32_t page_shift) {
    return uint64_t(bin) | (uint64_t(cls) << 16) | (kPageSlab << 24) |
           (uint64_t(page_in_slab) << page_shift << 32);
}
BTM_INLINE constexpr uint32_t pe_bin(uint64_t e) { return uint32_t(e & 0xffff); }
BTM_INLINE constexpr uint32_t pe_class(uint64_t e) { return uint32_t(e >> 16) & 0xff; }
BTM_INLINE constexpr uint32_t pe_offset(uint64_t e) { return uint32_t(e >> 32); }
BTM_INLINE constexpr uint32_t pe_kind(uint64_t e) { return uint32_t(e >> 24) & 0xff; }
// pe_kind(e) == kPageSlab in one instruction fewer (free's hit path): the
// kind byte minus one is zero, and the subtraction cannot borrow from below.
BTM_INLINE constexpr bool pe_plain_slab(uint64_t e) { return uint32_t(e) - (uint32_t(kPageSlab) << 24) < (1u << 24); }
static_assert(pe_plain_slab(kPageSlab << 24 | 0xffffff) && !pe_plain_slab(0xffffff) && !pe_plain_slab(kPageDraining << 24));
static_assert(kMaxBins <= 0x10000);

// Remote free list word: (count << 48) | pointer to the first slot, whose low
// bit (slots are 16-byte aligned) says the slab is queued on its central.
inline constexpr uint64_t kRemoteQueued = 1;
inline constexpr uint64_t kRemotePtrMask = ((uint64_t(1) << 48) - 1) & ~kRemoteQueued;

struct Slab {
    void* free;                 // local free list (encoded links); central lock
    uint16_t free_count;        // counts fit: a slab has at most 0xffff slots
    uint16_t bump;              // slots [bump, capacity) were never handed out
    uint16_t used;              // see the invariant above
    uint16_t bin;               // partition << kClassBits | class
    uint16_t npages;
    uint8_t cls : 6;
    uint8_t fresh : 1;          // some page was clean (zero, not resident) when the slab was made
    uint8_t zero : 1;           // every page was: never-used slots read as zeros
    uint8_t list;               // which central list holds it (SlabList)
    uint32_t epoch;             // last refill or flush touching it, chunks::stamp() (cold tiering)
    uintptr_t site;             // call site of the last refill that took slots from it
    Slab* next;                 // central list links
    Slab* prev;
    std::atomic<uint64_t> remote;  // lock-free pushes from any thread
    Slab* qnext;                // link in the central's queue of slabs with remote frees
};
// One cache line: a chunk's descriptors are 512 of them, and after a mass
// free the pages they sit on are most of what an almost empty chunk keeps.
static_assert(sizeof(Slab) == 64);

// kListMeshed: a meshed source, on no list; `prev` is its target and `next`
// the target's next source.
enum SlabList : uint8_t { kListNone = 0, kListPartial = 1, kListSparse = 2, kListEmpty = 3, kListMeshed = 4 };

struct ChunkHeader {
    uint64_t magic;
    uint32_t npages;            // pages in the chunk
    uint32_t first_page;        // first data page (after this header)
    uint32_t index;             // position in the chunk registry (its free-page counts are there)
    bool releasing;             // a whole-chunk release is in flight: not searchable
    bool released;              // entirely free and given back; nothing to age
    uint8_t idle_ticks;         // aging ticks the chunk has spent entirely free
    // Intern mode: the partition (+1) whose slabs alone the chunk ever
    // serves, and the next chunk it owns (registry index +1; 0 ends the
    // list).  Both on the first page, which a whole-chunk release keeps.
    uint16_t owner;
    uint32_t next_owned;
    uint64_t free_bits[kMaxPagesPerChunk / 64];   // 1 = page free
    uint64_t dirty_bits[kMaxPagesPerChunk / 64];  // 1 = free page not yet released
    uint64_t aged_bits[kMaxPagesPerChunk / 64];   // 1 = dirty at the last aging tick
    alignas(64) uint64_t pagemap[kMaxPagesPerChunk];
    Slab slabs[kMaxPagesPerChunk];
};

inline constexpr uint64_t kChunkMagic = 0x6274'6d61'6c6c'6f63ULL;  // "btmalloc"

BTM_INLINE ChunkHeader* chunk_of(uintptr_t a) { return reinterpret_cast<ChunkHeader*>(a & ~kChunkMask); }
BTM_INLINE ChunkHeader* chunk_of(const Slab* s) { return chunk_of(reinterpret_cast<uintptr_t>(s)); }
BTM_INLINE uint32_t slab_first_page(const Slab* s) { return uint32_t(s - chunk_of(s)->slabs); }
BTM_INLINE char* slab_base(const Slab* s) {
    return reinterpret_cast<char*>(chunk_of(s)) + (uintptr_t(slab_first_page(s)) << g.page_shift);
}
// The slab holding a pointer of ours whose page entry says kPageSlab.
BTM_INLINE Slab* slab_of(uintptr_t a, uint64_t entry) {
    ChunkHeader* c = chunk_of(a);
    uint32_t page = uint32_t((a - reinterpret_cast<uintptr_t>(c)) >> g.page_shift);
    return &c->slabs[page - (pe_offset(entry) >> g.page_shift)];
}

// The address in the target slab that pointer a, on a meshed source page
// (entry e), shows.
inline uintptr_t mesh_target(uintptr_t a, uint64_t e) {
    Slab* s = slab_of(a, e);
    return reinterpret_cast<uintptr_t>(slab_base(s->prev)) + (a - reinterpret_cast<uintptr_t>(slab_base(s)));
}

// Hash mode: the partition mask to publish once the heap passes
// g_partition_after bytes (0 = from the start).
extern uint64_t g_partition_after;
extern uint64_t g_part_mask_full;

namespace chunks {

// The tables below are also read from outside the process, by btm-pageout
// and btmctl through the descriptor features/introspect publishes: a change
// to their layout is a change of its version.
struct Region {
    uintptr_t base, size, used;  // [base, base+used) is carved into chunks
};
// The primary reservation and up to 15 more (each as big as the primary
// one; 256 GiB of chunks at most, kMaxChunks): enough, and small enough to
// sit with the other small globals (BTM_COLD_BSS).
inline constexpr unsigned kMaxRegions = 16;
inline constexpr unsigned kMaxChunks = 1u << 17;  // 256 GiB of chunks

// What the new-slab search reads about a chunk, kept beside its registry
// entry so that a search passes over a chunk without touching its header:
// walking a list of headers cost a cold miss per chunk, microseconds inside
// a malloc of a big class when the heap spans tens of chunks.
struct Entry {
    ChunkHeader* chunk;
    uint16_t free_pages;
    uint16_t dirty_pages;   // free pages still backed by memory
    // Upper bounds on the longest run of free (resident free) pages: exact
    // after a search of the chunk failed, raised when pages come back to
    // the length of the run they merge into, left alone when pages go.
    uint16_t max_run;
    uint16_t max_dirty_run;
};
static_assert(sizeof(Entry) == 16);

// The registry: all chunks, in creation order, 64 to a group.  Bit k of a
// group's word: its chunk k has free pages and is not being released
// (searchable).  A group is ~1 KiB: a small process touches one page for
// the bits and the entries both (a separate bitmap cost a page fault).
struct Group {
    uint64_t searchable;
    Entry entries[64];
};

// Guarded by the page-heap lock; regions and nregions are published with
// release stores, so owns() reads them without it.
extern Region regions[kMaxRegions];
extern std::atomic<unsigned> nregions;
extern Group* registry;   // set once by init()
extern unsigned nchunks;
extern unsigned max_chunks;  // the registry's capacity, set once by init()
// The heap has not passed partition_after yet: the shape of the short-lived
// and small processes of a machine-wide preload, which trade a little speed
// for memory (central.cpp's parked slabs, thread_cache.cpp's bin growth).
inline bool small_heap() {
    return uint64_t(__atomic_load_n(&nchunks, __ATOMIC_RELAXED)) * kChunkSize <= g_partition_after;
}
extern std::atomic<uint32_t> clock_base;  // the second the clock started; 0 before

// Reserves the address space (shrunk to fit RLIMIT_AS), with the
// process-wide tables just below it: returns `table_bytes` of zeroed,
// read-write memory for the caller's tables (the chunk registry follows
// them), or null if even the smallest reservation fails.  The tables lie
// outside [g.base, g.base + g.size), so a pointer into them is foreign to
// free(); together with the first chunk they cost one mmap and one mprotect.
void* init(uint64_t want_bytes, size_t table_bytes);
// True if a belongs to any reservation of ours (primary or extra).
bool owns(uintptr_t a);
// A run of `npages` data pages for a new slab; pagemap entries and the slab
// descriptor are initialised.  Null when out of memory.  In intern mode the
// run comes from a chunk owned by the bin's partition (a new chunk becomes
// its own): pages once in a partition's slab never serve another one's.
Slab* slab_alloc(uint32_t npages, uint32_t bin, uint32_t cls);
// Returns an empty slab's pages to its chunk.  The pages stay committed.
void slab_free(Slab* s);
// Memory return.  A free page is dirty (still backed) until released.  An
// aging tick collects the pages that stayed dirty for a whole interval, and
// whole chunks that stayed entirely free for one; collected pages are taken
// out of the free set (no slab can get them) until finish_release() gives
// them back clean, so a release never touches a page that holds a slot.
struct Range {
    uintptr_t addr;
    size_t len;
};
enum class Collect {
    kAged,    // an aging tick: pages dirty through a whole interval, idle chunks
    kExcess,  // dirty pages beyond the budget, newest chunks first, now
    kAll,     // everything free (malloc_trim)
};
// Fills up to max ranges; returns the number of ranges.
size_t collect(Range* out, size_t max, Collect mode, uint32_t warm_chunks);
void finish_release(const Range* r, size_t n);
uint64_t dirty_bytes();
// Bytes in live slabs (read without the lock: a hint).
uint64_t slab_bytes();
// Dirty bytes above the budget (max(4 MiB, 1/32 of the bytes in slabs)): what
// must go back now rather than at the next tick.
uint64_t dirty_excess();

// Pre-faulting ahead of demand: while fewer than `target` free pages are
// resident in the chunks slab_alloc searches first, takes clean free pages
// of those chunks (a new chunk if they have none) out of the free set; the caller faults them in and hands
// them back as dirty (resident) with finish_prefault().
size_t prefault_collect(Range* out, size_t max, uint64_t target);
void finish_prefault(const Range* r, size_t n);
// Clean pages slabs have been made of so far: the heap growing into
// unfaulted memory, which is what pre-faulting serves.
uint64_t clean_taken_pages();

// Cold tiering: appends the data pages of live slabs last touched before
// `before` (adjacent slabs merged), scanning chunks from *cursor on; returns
// the number of ranges (0 when the scan is done) and advances *cursor.
size_t cold_ranges(uint32_t* cursor, uint32_t before, Range* out, size_t max);

// Slab stamps, in os::coarse_seconds().  The clock is read only once the
// start-up phase is over (end_coarse_phase) or a pageout asks for ages:
// a short-lived process never reads it, which saved it the page fault of
// mapping the vDSO's data page (one of ~100 for `cat`).  Until then a
// stamp is 0, read as the second the clock started: slabs made in the
// phase count as no older than that, so a pageout never takes them early.
uint32_t stamp();
void start_clock();  // idempotent, lock-free

// Histogram of live slabs by occupancy (used / capacity) in ten buckets;
// `list` counts them by central list (none, partial, sparse, empty).
void occupancy(uint64_t hist[10], uint64_t list[4]);

// Page-heap lock, for fork.
void lock_all();
void unlock_all(bool child);
bool lock_held();  // see SpinLock::is_locked

// Mesh compaction's file backing (knob mesh): with g.mesh set before the
// heap exists, each reservation gets a memfd and its chunks are mapped
// MAP_SHARED from it at file offset = address - region base.  backing_fd()
// is -1 for a region left anonymous (memfd failed there).  Released pages
// are then punched out of the file (os/memfd.h), not MADV_DONTNEED'd, and
// slab_free() first calls `unmesh_hook` (the target gives its sources back).
extern void (*unmesh_hook)(Slab*);
int backing_fd(unsigned region);
void set_backing_fd(unsigned region, int fd);  // fork's child: the new file
// The region holding a (of ours), and the file offset of a in it.
unsigned region_of(uintptr_t a);
// Marks a meshed source's pages kPageMeshed (heap lock: frees read them).
void mark_meshed(Slab* s);

struct Counters {
    uint64_t chunks, slabs, made, committed, reserved, dirty, free_chunks;
};
Counters counters();

}  // namespace chunks
}  // namespace btm
