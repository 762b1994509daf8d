// Slow paths of malloc and free, the generic operations built on the fast
// paths (realloc, aligned allocation, calloc), initialisation and fork.
#include "core/alloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include <cstring>

#include "core/boot.h"
#include "core/central.h"
#include "core/forward.h"
#include "core/globals.h"
#include "core/large.h"
#include "core/lock.h"
#include "core/orphan.h"
#include "core/reclaim.h"
#include "core/thread_cache.h"
#include "features/introspect.h"
#include "features/mesh.h"
#include "features/report.h"
#include "os/os.h"

namespace btm {

constinit Globals g;
ClassInfo g_class[kNumClasses];
std::array<uint8_t, kLutMax / 16 + 1> g_class_lut = kCoarseLut;
SlotCheck g_check[kNumClasses];
config::Values g_cfg;
bool g_heap_ok;
EventCounters g_events;
int* g_alive;

namespace {

SpinLock init_lock;

// The start-up phase (knob startup_bytes): until a process has taken that
// many bytes, or asks for a block too big or too aligned for them, its
// mallocs are served from the boot arena, packed one after the other as in
// a bump heap, and no reservation, table or chunk exists.  A program that
// stays that small (most of the commands of a shell pipeline) is spared the
// system calls of making the heap (4) and its page faults: the tables' and
// the chunk header's (5), and one data page per size class it used (6
// classes, where packed blocks of all sizes share pages: `tr` touched 8 data
// pages against glibc's 5).  A shell's forked child frees and allocates
// without making a slab.  The price: blocks freed in the phase are never
// reused (at most startup_bytes per process), and the phase's mallocs take
// the slow path (one compare-and-swap each).
bool g_startup;
uint64_t g_startup_bytes;
// The thread whose first malloc made the process (its state's address: no
// system call to ask who we are).
const ThreadState* g_startup_thread;
// Blocks in the phase: below kStartupLarge from the arena while they fit in
// startup_bytes (`rev`'s 32 KiB line buffer, opendir's 32 KiB one: with a
// 16 KiB limit these made a heap in half the commands that still did);
// from kStartupLarge on, large blocks (their own mappings, as after the
// phase), which do not end it.
inline constexpr size_t kStartupLarge = 65536;

// A realloc that grows a block to this size or more makes it a large block,
// and a large block stays one while realloc keeps it this big: its next
// growth moves pages (mremap) instead of copying into a bigger slot.  A
// table grown by doubling (`ls`'s file table: 20.8 -> 332.8 KB) used to
// leave every freed copy resident in a one-slot slab, 312 KB of them
// (issue 22); now only the copies below the bound, which smaller blocks
// reuse.  Programs that grow a buffer this far are rare per process, so
// the mapping each costs (glibc maps from 128 KiB) is not a hot path.
inline constexpr size_t kReallocLarge = 65536;

// Depth guard for slow paths: a call nested inside one (from a pthread
// function we call, or from a signal handler) sees depth > 0 and is served
// from the boot arena instead of re-entering locked code.
struct Nested {
    Nested() { ++t_state.depth; }
    ~Nested() { --t_state.depth; }
};

void setup_classes() {
    size_t page = size_t(1) << g.page_shift;
    for (unsigned c = 0; c < kNumClasses; ++c) {
        ClassInfo& ci = g_class[c];
        uint32_t size = kClassSize[c];
        // Enough slots that a refill is worth its lock (but a slab stays a
        // page or a few: every (partition, class) pair pins at most one
        // partly used slab), and at most 1/8 of the slab lost to the tail.
        // Up to 1 KiB a slab is one page (4 slots of 1 KiB suffice): a page
        // is then freed with its slab's last slot, so after a random mass
        // free a page goes back as soon as no survivor is on it.
        uint32_t min_slots = size <= 512 ? 8 : size <= 1024 ? 4 : (32768 / size ? 32768 / size : 1);
        // Fewer pages cannot hold min_slots: starting from 1 made this loop
        // ~1,600 steps with a division each (17,000 instructions in every
        // process's init, most of it for the one-slot classes).
        size_t pages = (size_t(min_slots) * size + page - 1) / page;
        for (;; ++pages) {
            size_t bytes = pages * page;
            size_t slots = bytes / size;
            if (slots >= min_slots && (bytes - slots * size) * 8 <= bytes) break;
            if (slots >= min_slots && bytes >= 4 * size) break;  // no better tail in sight
        }
        size_t slots = pages * page / size;
        if (slots > 0xffff) {
            slots = 0xffff;
            pages = (slots * size + page - 1) / page;
        }
        ci.size = size;
        ci.npages = uint16_t(pages);
        ci.capacity = uint16_t(slots);
        g_check[c] = make_slot_check(uint32_t(size), uint32_t(slots));
        // A refill or flush moves half a full bin, `batch` slots, under the
        // central lock: 32 KiB, and at most 128 slots (sizes up to 256 B).
        // 128 rather than 64: a producer/consumer pair of threads at 64 B
        // takes the lock and moves its lines between CPUs half as often,
        // 33-37 -> 48-50 Mops, and 9.0 -> 12.0 in the VM's slow mode where
        // jemalloc makes 10.2 (bench_prodcons, interleaved runs); latency,
        // churn and the burst benchmark's RSS unchanged.
        uint32_t batch = 32768 / size;
        ci.batch = uint16_t(batch < 1 ? 1 : batch > 128 ? 128 : batch);
    }
}

uint32_t round_pow2(uint64_t v) {
    uint32_t p = 1;
    while (p < v && p < kMaxPartitions) p <<= 1;
    return p;
}

// With one thread in the process no other can hold an allocator lock, and
// none exists in the child (the background thread would be a second one):
// the handlers then write nothing, not even this thread's state (its TLS
// page would be copied after each fork, in the parent and in the child).
// A shell forks for every command, and locking and unlocking the used
// centrals made both sides copy their pages (copy-on-write faults in the
// parent, and in each child before its exec).
// glibc's __libc_single_threaded is looked up at the first fork: importing
// it cost every process a symbol lookup at load (~800 instructions of a
// /bin/true), and only processes that fork read it.  Without it (an old or
// another C library) every fork takes the locks.
std::atomic<const char*> g_single_flag{nullptr};
const char kNoFlag = 0;

bool one_thread() {
    const char* flag = g_single_flag.load(std::memory_order_relaxed);
    if (!flag) {
        flag = static_cast<const char*>(dlsym(RTLD_DEFAULT, "__libc_single_threaded"));
        if (!flag) flag = &kNoFlag;
        g_single_flag.store(flag, std::memory_order_relaxed);
    }
    return *flag;
}

// The init lock is held across fork, so a child never inherits a heap half
// made; a process still in the start-up phase (no heap yet) has only the
// large-block table to lock.
//
// g_fork_locked says that the running fork's prepare handler took the locks.
// It changes only under the init lock, which that handler takes first, so a
// second thread's fork waits and then sees its own value.
bool g_fork_locked;

void fork_prepare() {
    // An orphaned process (orphan.h) cannot take the locks: it never
    // touches the heap again, and neither will its child.
    if (one_thread() || orphaned()) return;
    init_lock.lock();
    g_fork_locked = true;
    ++t_state.depth;  // a malloc in another library's handler must not wait for our locks
    if (!g_heap_ok) {
        boot::lock_spill();
        large::lock_all();
        return;
    }
    reclaim::fork_prepare();
    central::lock_registry();
    central::for_each_used([](Central& c) { c.lock.lock(); });
    chunks::lock_all();
    large::lock_all();
    tcache::fork_prepare();
}

void fork_parent() {
    if (!g_fork_locked) return;
    if (g_heap_ok) {
        tcache::fork_parent();
        chunks::unlock_all(false);
        central::for_each_used([](Central& c) { c.lock.unlock(); });
        central::unlock_registry(false);
        reclaim::fork_parent();
    } else {
        boot::unlock_spill(false);
    }
    large::unlock_all(false);
    --t_state.depth;
    g_fork_locked = false;
    init_lock.unlock();
}

void fork_child() {
    if (!g_fork_locked) return;
    orphan::fork_child();  // every lock is about to be reset
    if (g_heap_ok) {
        tcache::fork_child();
        chunks::unlock_all(true);
        partition::fork_child();
        central::for_each_used([](Central& c) { c.lock.reset(); });
        central::unlock_registry(true);
        reclaim::fork_child();
    } else {
        boot::unlock_spill(true);
    }
    large::unlock_all(true);
    --t_state.depth;
    g_fork_locked = false;
    init_lock.reset();
}

// pthread_atfork itself is a stub from libc_nonshared.a that the linker puts
// after all of the library's own code, in a second 64 KiB window of it (one
// more page fault per process, CMakeLists.txt); it only passes this object's
// handle on to glibc's exported __register_atfork.
extern "C" int __register_atfork(void (*prepare)(), void (*parent)(), void (*child)(), void* dso);
extern "C" void* __dso_handle;

// The environment the process started with, as ld.so (or a static
// program's start-up code) hands it to initialisers.  Naming `environ` cost
// every process start a symbol lookup at load (~750 instructions of a
// preloaded /bin/true) for a variable read once.  Priority 101: in a static
// program this runs before the program's own initialisers.  A malloc that
// comes earlier (from an initialiser of a library ld.so runs first) looks
// the variable up then.
char** g_start_env;
__attribute__((constructor(101))) void capture_environment(int, char**, char** envp) { g_start_env = envp; }

char** start_environment() {
    if (g_start_env) return g_start_env;
    auto* p = static_cast<char***>(dlsym(RTLD_DEFAULT, "environ"));
    return p ? *p : nullptr;
}

// Before that initialiser has run (for `ls` and `sed`, libselinux's
// initialiser allocates first), small requests are served from the boot
// arena and init waits for the environment to arrive: the dlsym above
// cost ~2,800 instructions of such a process.  Bounded: past kEarlyBytes of
// such blocks, or for a larger request, init runs anyway and uses dlsym.
inline constexpr size_t kEarlyMax = 4096, kEarlyBytes = 256 * 1024;
void* early_alloc(size_t n, size_t align) {
    if (g_start_env || n > kEarlyMax) return nullptr;
    return boot::alloc(n, align, 0, kEarlyBytes);
}

// The first call of an imported function binds its PLT slot: ld.so writes
// this library's GOT and its own data, which in a child of fork is about ten
// copy-on-write page faults.  A shell forks for every command and its child
// frees before exec, so the imports that free and realloc may call first
// there are bound here, in the parent, at init: errno (saved around free's
// slow paths) and memmove (realloc's copy, through memcpy in dso_link.cpp).
// Measured: 10 forked `true | true | ...` children, 469 -> 557 page faults
// when init stopped calling them for its own sake.
BTM_NOINLINE void bind_late_imports() {
    volatile int* e = &errno;
    *e = *e;
    char from = 0, to = 0;
    size_t n = 1;
    __asm__ volatile("" : "+r"(n));  // a real call, not an inlined byte copy
    memmove(&to, &from, n);
    __asm__ volatile("" : : "r"(&to) : "memory");
}

void init_heap();

// Per-call-site partitions from the first block (BTM_PARTITION_MODE=intern).
bool intern_configured() { return kPartitioning && g_cfg.partition_mode == 1; }

void do_init() {
    bind_late_imports();
    g.page_shift = uint32_t(__builtin_ctzll(os::page_size()));
    g.page_mask = os::page_size() - 1;
    // Where each knob came from matters only to BTM_VERBOSE's print inside
    // load(): kept on load()'s stack.  A global in .lbss cost every process
    // a page, written by the reset of its 264 bytes (issue 22).
    config::load(&g_cfg, nullptr, start_environment(), os::secure_mode());
    if (!g_cfg.enabled) {
        if (forward::resolve()) {
            g_forward = true;
            if (g_cfg.verbose) {
                static const char kLine[] = "btmalloc: enabled = off: forwarding every call to glibc's allocator\n";
                os::write_all(2, kLine, sizeof kLine - 1);
            }
            __atomic_store_n(&g.initialized, true, __ATOMIC_RELEASE);
            return;
        }
        static const char kWarn[] = "btmalloc: enabled = off, but glibc's allocator was not found: staying on\n";
        os::write_all(2, kWarn, sizeof kWarn - 1);
    }
    g.checks = g_cfg.hardening != 0;
    if (kPartitioning) g_cfg.partitions = tcache::prepare_placeholder(round_pow2(g_cfg.partitions));
    large::init(g_cfg.large_cache);
    // Before the heap: large blocks freed in the start-up phase decay too.
    reclaim::init(g_cfg.async != 0, g_cfg.seccomp_async != 0, uint32_t(g_cfg.warm_chunks));
    introspect::publish_boot(g_cfg.pageout != 0);
    if (g_cfg.mesh) mesh::register_fork();  // first: its parent handler waits before ours unlock
    __register_atfork(fork_prepare, fork_parent, fork_child, &__dso_handle);
    // Per-site partitions from the first block (intern mode, or
    // partition_after 0) leave no room for a start-up phase.
    bool startup = g_cfg.startup_bytes != 0 && g_cfg.partition_after != 0 && !intern_configured();
    if (startup) {
        g_startup_bytes = g_cfg.startup_bytes;
        g_startup_thread = &t_state;
        __atomic_store_n(&g_startup, true, __ATOMIC_RELAXED);
        __atomic_store_n(&g.initialized, true, __ATOMIC_RELEASE);
        return;
    }
    init_heap();
}

// The token of orphaned() (orphan.h): a page of its own, so that marking it
// splits no other mapping.  Without MADV_WIPEONFORK (Linux < 4.14) there is
// no token and a clone() child can still hang on an inherited lock.
// Armed before the init lock is taken to make the heap, so that a clone()
// made while another thread holds it finds the token too; idempotent.
void arm_orphan_check() {
    if (__atomic_load_n(&g_alive, __ATOMIC_ACQUIRE)) return;
    auto* page = static_cast<int*>(os::map(4096));
    if (!page) return;
    bool ok = os::wipe_on_fork(page, 4096);
    if (ok) {
        *page = 1;
        int* none = nullptr;
        ok = __atomic_compare_exchange_n(&g_alive, &none, page, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
    }
    if (!ok) os::unmap(page, 4096);  // no WIPEONFORK, or another thread armed it first
}

// The heap proper: the reservation, the tables, the first chunk.  Runs at
// init, or when the start-up phase ends.
void init_heap() {
    uint32_t npart = kPartitioning ? round_pow2(g_cfg.partitions) : 1;
    uint64_t keys[2];
    os::random_bytes(keys, sizeof keys);
    // hardening = off stores the slabs' free-list links plain; the free
    // mark is still written (free's check of it is what the knob turns off).
    g.secret = g.checks ? keys[0] : 0;
    g.free_key = keys[1] | 1;  // never 0, the mark of a fresh slot
    setup_classes();
    g_warm_slabs = uint32_t(g_cfg.warm_slabs);
    g.npart = npart;
    size_t nbins = size_t(npart) << kClassBits;
    // The process-wide tables, in the reservation's first read-write range
    // (chunks::init; their pages are touched as they are used): the first
    // thread's cache, the centrals, the bits of used ones, the partition
    // tables and the chunk registry (the last three start on one page).
    size_t cache_bytes = (tcache::cache_bytes() + 4095) & ~size_t(4095);
    size_t central_bytes = nbins * sizeof(Central) + ((npart * sizeof(uint64_t) + 63) & ~size_t(63));
    size_t part_bytes = partition::table_bytes(npart);
    size_t table_bytes = cache_bytes + central_bytes + part_bytes;
    mesh::configure();  // memfd backing, before the first reservation
    char* first_cache = static_cast<char*>(chunks::init(g_cfg.reserve, table_bytes));  // publishes g.base and g.size
    bool ok = first_cache != nullptr;
    // Without a heap no request reaches a cache, a central or a partition's
    // table (malloc_slow serves it from the arena or a mapping first), so
    // none is mapped: under RLIMIT_AS, where a heap is refused, they were
    // 390 KiB of address space the program needed (issue 22).
    char* meta = first_cache ? first_cache + cache_bytes : nullptr;
    g_central = reinterpret_cast<Central*>(meta);
    if (meta) {
        central::g_used = reinterpret_cast<std::atomic<uint64_t>*>(meta + nbins * sizeof(Central));
        // The first partition's centrals (4 KiB: a small process uses no
        // other) are read by central::use before anything writes them: a
        // read maps the zero page and the write after it faults again.
        // Written first, each of their pages faults once.
        memset(meta, 0, (size_t(1) << kClassBits) * sizeof(Central));
    }
    g.intern = intern_configured();
    ok = ok && partition::init(npart, g.intern, meta + central_bytes);
    tcache::init(g_cfg.tcache_bytes, first_cache);
    g_heap_ok = ok;
    if (ok) introspect::publish();
    if (g.intern) __atomic_fetch_or(&g.divert, kDivertIntern, __ATOMIC_RELAXED);
    g_part_mask_full = uint64_t(npart - 1) << kClassBits;
    g_partition_after = g_cfg.partition_after;
    if (g_partition_after == 0) {
        g.part_mask = g_part_mask_full;
        end_coarse_phase();
    }
    arm_orphan_check();
    // Without a heap every malloc stays diverted to the slow path, in every
    // mode: intern mode's inline path read a table never mapped (SIGSEGV
    // under RLIMIT_AS, issue 22).
    if (ok) __atomic_fetch_and(&g.divert, uint8_t(~kDivertNoHeap), __ATOMIC_RELAXED);
    __atomic_store_n(&g.initialized, true, __ATOMIC_RELEASE);
}

}  // namespace

bool init_lock_held() { return init_lock.is_locked(); }

void init() {
    // A call nested in a slow path (maybe in init itself) must not wait for
    // the init lock; it is served from the boot arena.
    if (__atomic_load_n(&g.initialized, __ATOMIC_ACQUIRE) || t_state.depth) return;
    Nested nested;
    LockGuard guard(init_lock);
    if (!g.initialized) do_init();
}

namespace {

// Ends the start-up phase: makes the heap.  Idempotent.
BTM_NOINLINE void end_startup() {
    Nested nested;
    arm_orphan_check();
    LockGuard guard(init_lock);
    if (__atomic_load_n(&g_startup, __ATOMIC_RELAXED)) {
        init_heap();
        __atomic_store_n(&g_startup, false, __ATOMIC_RELEASE);
    }
}

// A block of the start-up phase (zeros: the arena is never reused), or null
// once the phase is over, which this call may decide.  Another thread's
// first malloc ends the phase: the arena packs blocks back to back whoever
// asks, so two threads' blocks would share cache lines and every write of
// one would evict the other's (bench_scratch with two threads, whose whole
// run fits in the arena: 1.28x the best peer's CPU time).  The phase is
// for short-lived processes, which seldom start threads.
BTM_NOINLINE void* startup_alloc(size_t n, size_t align, uintptr_t ra) {
    // No event counter here: after each fork a shell's next malloc would
    // copy the counter's page (stats count the arena's blocks instead).
    if (&t_state == g_startup_thread)
        if (void* p = boot::alloc(n, align, ra, g_startup_bytes)) return p;
    end_startup();
    return nullptr;
}

// No heap (no address space for a reservation under RLIMIT_AS): small
// blocks go on filling the arena as in the start-up phase, then spill
// regions.  A mapping each took a page per malloc, and `ls -la /` ran out
// of address space on them at limits where glibc's heap fits (issue 22).
BTM_NOINLINE void* malloc_heapless(size_t n, uintptr_t ra) {
    if (n < kStartupLarge)
        if (void* p = boot::alloc(n, 16, ra, boot::kBytes - boot::kNestedReserve)) return p;  // zeros: calloc knows
    bool fresh;
    void* p;
    {
        Nested nested;  // a signal handler's malloc or free must not wait for the spill lock
        p = boot::spill_alloc(n, ra, &fresh);
    }
    if (!p) return malloc_large(n, 0, false, ra);
    if (fresh) t_state.zeroed = p;
    return p;
}

BTM_INLINE bool in_startup() { return BTM_UNLIKELY(__atomic_load_n(&g_startup, __ATOMIC_ACQUIRE)); }

}  // namespace

void* malloc_slow(size_t n, uintptr_t ra) {
    ThreadState& t = t_state;
    if (t.depth) return boot::alloc(n, 16);
    if (BTM_UNLIKELY(!g.initialized)) {
        if (void* p = early_alloc(n, 16)) return p;
        init();
    }
    if (BTM_UNLIKELY(orphaned())) return orphan::alloc(n, 16);
    if (in_startup()) {
        if (n >= kStartupLarge) return malloc_large(n, 0, false, ra);
        if (void* p = startup_alloc(n, 16, ra)) return p;  // zeros: calloc knows (boot::owns)
    }
    if (BTM_UNLIKELY(g_forward)) return g_real.malloc(n);
    if (BTM_UNLIKELY(!g_heap_ok)) return malloc_heapless(n, ra);
    uint32_t cls = class_for(n);
    uint32_t bin = partition::bits_of(ra) | cls;
    if (void* p = tcache::run_pop(bin, false)) return t.zeroed = p;  // zeros: not even the free mark to clear
    if (BTM_UNLIKELY(g_events.slow_mallocs.fetch_add(1, std::memory_order_relaxed) == kCoarseSlowCalls))
        end_coarse_phase();
    void* p;
    {
        Nested nested;
        if (t.tc == g_placeholder_tc && t.phase == Phase::kNone) tcache::thread_start();
        p = tcache::refill(bin, cls, ra);
        bool zero = false;
        if (!p && (p = tcache::run_pop(bin, true))) zero = true;  // the refill made a fresh run
        if (BTM_UNLIKELY(!p)) {
            errno = ENOMEM;
            return nullptr;
        }
        partition::note_site(bin, ra);
        if (zero) t.zeroed = p;
        else if constexpr (kHardening) clear_mark(p);  // a slot of the bin's stack, or alloc_one's
    }
    reclaim::poll();  // outside every lock and with depth 0: may start a thread
    return p;
}

void* malloc_large(size_t n, size_t align, bool zero, uintptr_t ra) {
    if (t_state.depth) return boot::alloc(n, align < 16 ? 16 : align);  // zeroed: never reused
    if (BTM_UNLIKELY(!g.initialized)) {
        if (void* p = early_alloc(n, align < 16 ? 16 : align)) return p;
        init();
    }
    if (BTM_UNLIKELY(orphaned())) return orphan::alloc(n, align < 16 ? 16 : align);
    if (BTM_UNLIKELY(g_forward)) {
        if (align > kAlignment) return g_real.memalign(align, n);
        return zero ? g_real.calloc(1, n) : g_real.malloc(n);
    }
    void* p;
    {
        Nested nested;
        p = large::alloc(n, align, zero, ra);
    }
    if (!p) errno = ENOMEM;
    return p;
}

void end_coarse_phase() {
    for (size_t i = 0; i < g_class_lut.size(); ++i) __atomic_store_n(&g_class_lut[i], kClassLut[i], __ATOMIC_RELAXED);
    chunks::start_clock();
}

namespace {

void count_foreign(void* p) { g_events.foreign_frees.fetch_add(1, std::memory_order_relaxed); }

// A free of ours that missed the primary range test: an extra reservation.
void free_small_general(void* p, uintptr_t ra) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    ChunkHeader* c = chunk_of(a);
    uint64_t e = c->pagemap[(a & kChunkMask) >> g.page_shift];
    if (e == 0 || !is_slot_start(pe_class(e), pe_offset(e) + (a & g.page_mask))) return invalid_free(p);
    if constexpr (kHardening)
        if (g.checks && marked_free(p)) return double_free(p, e, ra);
    if (pe_kind(e) != kPageSlab) return central::free_home(p, e);
    if constexpr (kHardening) mark_free(p);
    Bin* b = &t_state.tc->bins[pe_bin(e)];
    if (b->count >= b->max) return free_full(p, e);
    b->slots[b->count++] = p;
}

}  // namespace

void free_outside(void* p, uintptr_t ra) {
    if (!p) return;
    int saved = errno;
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (boot::owns(p) || boot::spilled(p)) {
        // An arena block is never reused (boot.h): only marked.  A spill
        // block is, under a lock that neither a nested call nor an orphaned
        // process (orphan.h) may take.
        boot::Release r = boot::release(p, !t_state.depth && !orphaned());
        if (r == boot::Release::kInvalid) invalid_free(p);
        if constexpr (kHardening) {
            if (r == boot::Release::kDouble && g.checks) double_free_boot(p, ra);
            if (r == boot::Release::kCorrupt && g.checks) corrupted_boot_header(p, "free()", ra);
        }
    } else if (g_forward) {
        g_real.free(p);
    } else if (g_heap_ok && chunks::owns(a)) {
        free_small_general(p, 0);
    } else if (t_state.depth) {
        count_foreign(p);  // nested: cannot take the large-table lock
    } else if (orphaned()) {
        if (!orphan::release(p)) count_foreign(p);
    } else {
        {
            Nested nested;
            size_t size = 0;
            bool cached = false;
            large::Free r = large::free(p, &size, &cached);
            if (r == large::Free::kFreedBefore && kHardening && g.checks) large_freed_before(p, size, cached, ra);
            if (r != large::Free::kFreed) count_foreign(p);
        }
        reclaim::poll(true);  // the cache's decay: starts the thread, or runs a due tick without one
    }
    errno = saved;
}

void invalid_free(void* p) {
    uint64_t n = g_events.invalid_frees.fetch_add(1, std::memory_order_relaxed);
    if (n == 0 && g_cfg.verbose) {
        report::Line line;
        line.str("btmalloc: free() of an address inside the heap that is not a block start: ")
            .hex(reinterpret_cast<uintptr_t>(p))
            .str(" (ignored; further ones are counted in btm_stats)");
        line.emit();
    }
}

void free_unusual(void* p, uint64_t e, uintptr_t ra) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (e == 0 || !is_slot_start(pe_class(e), pe_offset(e) + (a & g.page_mask))) return invalid_free(p);
    if constexpr (kHardening)
        if (g.checks && marked_free(p)) return double_free(p, e, ra);
    int saved = errno;
    central::free_home(p, e);
    reclaim::poll(true);
    errno = saved;
}

void free_full(void* p, uint64_t entry) {
    int saved = errno;
    tcache::free_slow(p, entry);
    errno = saved;
}


void* malloc_diverted(size_t n, uintptr_t ra) {
    if (g.divert & kDivertNoHeap) return malloc_slow(n, ra);
    if ((g.divert & kDivertTick) && (++t_state.diverted & 255) == 0 && !t_state.depth) reclaim::poll();
    uint32_t bin = partition::bits_of(ra) | class_for(n);
    return bin_pop(&t_state.tc->bins[bin], n, ra);
}

size_t usable_size(const void* p, const char* fn, uintptr_t ra) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (!p) return 0;
    if (in_primary(a) || (g_heap_ok && chunks::owns(a))) {
        ChunkHeader* c = chunk_of(a);
        uint64_t e = c->pagemap[(a & kChunkMask) >> g.page_shift];
        if (e == 0 || !is_slot_start(pe_class(e), pe_offset(e) + (a & g.page_mask))) return 0;
        return g_class[pe_class(e)].size;
    }
    if (boot::owns(p) || boot::spilled(p)) {
        boot::Header h = boot::header(p);
        if constexpr (kHardening)
            if (h.state == boot::Header::kCorrupt && g.checks) corrupted_boot_header(p, fn, ra);
        return h.size;
    }
    if (g_forward) return g_real.usable_size(const_cast<void*>(p));
    if (t_state.depth) return 0;
    if (orphaned()) return orphan::usable(p);
    Nested nested;
    return large::usable(p);
}

namespace {

// Out of realloc_impl, which lies in the library's first 64 KiB window
// (tests/check_library.sh): growth past kReallocLarge is rare per process.
// A block up to kMaxSmall that gets no mapping of its own (under RLIMIT_AS,
// where the reservation already holds the address space for it: `ls` ran
// out at glibc's floor + 2.8 MB) is a slab block as before.
// The end of every realloc that moves: `q` is the new block (null when none
// could be had), `old` the usable size of `p`.
BTM_INLINE void* move_into(void* q, void* p, size_t old, size_t n, uintptr_t ra) {
    if (!q) return nullptr;
    memcpy(q, p, n < old ? n : old);
    free_fast(p, ra);
    return q;
}

[[gnu::cold]] BTM_NOINLINE void* realloc_into_large(void* p, size_t old, size_t n, uintptr_t ra) {
    int saved = errno;
    void* q = malloc_large(n, 0, false, ra);
    if (!q && n <= kMaxSmall && (q = malloc_fast(n, ra))) errno = saved;
    return move_into(q, p, old, n, ra);
}

[[gnu::cold]] BTM_NOINLINE void* realloc_large(void* p, size_t old, size_t n, uintptr_t ra) {
    void* q;
    {
        Nested nested;
        q = large::realloc(p, n, ra);  // sets no errno
    }
    if (!q && n <= kMaxSmall) q = move_into(malloc_fast(n, ra), p, old, n, ra);
    if (!q) errno = ENOMEM;
    return q;
}

}  // namespace

void* realloc_impl(void* p, size_t n, uintptr_t ra) {
    if (!p) return malloc_fast(n, ra);
    if (n == 0) {
        free_fast(p, ra);
        return nullptr;
    }
    if (BTM_UNLIKELY(g_forward) && !boot::owns(p)) return g_real.realloc(p, n);
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    size_t old = usable_size(p, "realloc()", ra);
    if (old == 0) {
        // Not a block of ours: its size is unknown, so it cannot be moved.
        errno = ENOMEM;
        return nullptr;
    }
    bool small = in_primary(a) || chunks::owns(a);
    if (small || boot::owns(p) || boot::spilled(p)) {
        // Keep the block when the new size still fits and wastes under half.
        if (small && n <= old && n > old / 2) return p;
        // Not in intern mode: a large block goes to the shared large cache,
        // and blocks up to 1 MiB keep to their call site's memory (§1).
        if (n >= kReallocLarge && n > old && !g.intern) return realloc_into_large(p, old, n, ra);
    } else if (n >= kReallocLarge && !orphaned()) {
        return realloc_large(p, old, n, ra);
    }
    return move_into(malloc_fast(n, ra), p, old, n, ra);
}

void* aligned_impl(size_t align, size_t n, uintptr_t ra) {
    if (align <= kAlignment) return malloc_fast(n, ra);
    if (BTM_UNLIKELY(!g.initialized)) init();
    if (BTM_UNLIKELY(g_forward)) return g_real.memalign(align, n);
    if (in_startup()) {
        if (n >= kStartupLarge) return malloc_large(n, align, false, ra);
        // The slab path below must not land in the arena: past 4 KiB of
        // alignment, or once startup_alloc has ended the phase.
        if (align > 4096) end_startup();
        else if (void* p = startup_alloc(n, align, ra)) return p;
    }
    // Without a heap a small block is only 16-byte aligned (arena, spill).
    if (g_heap_ok && align <= g.page_mask + 1 && n <= kMaxSmall) {
        // Slabs start on page boundaries, so a class whose size is a multiple
        // of the alignment has every slot aligned; the powers of two are all
        // classes, so the search ends.
        size_t want = n > align ? n : align;
        for (unsigned c = class_of(want); c < kNumClasses; ++c)
            if (kClassSize[c] % align == 0) return malloc_fast(kClassSize[c], ra);
    }
    if (BTM_UNLIKELY(!g.initialized)) init();
    return malloc_large(n, align, false, ra);
}

void* calloc_impl(size_t count, size_t size, uintptr_t ra) {
    size_t total;
    if (BTM_UNLIKELY(__builtin_mul_overflow(count, size, &total))) {
        errno = ENOMEM;
        return nullptr;
    }
    if (total > kMaxSmall || BTM_UNLIKELY(g_forward)) return malloc_large(total, 0, true, ra);
    // In the start-up phase such a block is a fresh mapping, zeros already:
    // through malloc_fast it was cleared, every page faulted in (Python's
    // start callocs 512 KiB of sparse tables: +384 KiB resident, issue 22).
    if (total >= kStartupLarge && in_startup()) return malloc_large(total, 0, true, ra);
    // A slot from a fresh run is zero and maybe not even resident: clearing
    // it would only fault its pages in.
    t_state.zeroed = nullptr;
    void* p = malloc_fast(total, ra);
    // The boot arena's blocks are zeros too: it never hands out a byte twice.
    if (BTM_LIKELY(p) && p != t_state.zeroed && !boot::owns(p)) memset(p, 0, total);
    return p;
}

size_t trim_impl() {
    if (g_forward) return g_real.trim && g_real.trim(0) ? 1 : 0;
    if (!g.initialized || t_state.depth || orphaned()) return 0;
    size_t n;
    {
        Nested nested;
        n = large::trim();  // cached in the start-up phase too
        if (!g_heap_ok) return n;
        tcache::flush_all();
    }
    return n + reclaim::trim_all();
}

}  // namespace btm
