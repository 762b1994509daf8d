#include "core/reclaim.h"

#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "core/central.h"
#include "core/chunk.h"
#include "core/globals.h"
#include "core/large.h"
#include "core/lock.h"
#include "core/orphan.h"
#include "core/state.h"
#include "os/memfd.h"
#include "os/os.h"
#include "os/syscall.h"
#include "os/uring.h"

namespace btm::reclaim {
namespace {

inline constexpr uint64_t kTickNs = 250'000'000;        // the aging interval
// Pending bytes that justify a thread.  Below it they stay resident until a
// slow path runs a tick, which an idle process never takes: a daemon that
// freed a burst of 900 KiB kept it for good while 1 MiB was the bar.  The
// thread costs ~12 KiB resident (its stack's top pages): glibc's trim
// threshold (128 KiB) pays for it ten times over.
inline constexpr uint64_t kStartThreadBytes = 128 << 10;
inline constexpr size_t kBatch = 64;                    // ranges per release batch
inline constexpr uint32_t kHelpRun = 512;                // see poll()
// Free pages kept resident ahead of a growing heap (see prefault()).
inline constexpr uint64_t kReadyBytes = 512 * 1024;
inline constexpr uint64_t kGrowNs = 10'000'000;  // how often a growing heap is looked at

SpinLock tick_lock;  // one tick at a time; held across collect -> finish
bool async_wanted;
bool async_under_filter;  // knob seccomp_async: thread and ring even under a seccomp filter
uint32_t warm;
std::atomic<bool> started{false};
std::atomic<uint32_t> wake_word{0};
std::atomic<bool> sleeping{false};  // the thread waits without a timeout
std::atomic<bool> kicked{false};    // woken and not yet run: no second futex call
std::atomic<uint64_t> last_tick_ns{0};
std::atomic<uint32_t> free_run{0};
std::atomic<uint64_t> clean_seen{0};  // chunks::clean_taken_pages() at the thread's last look
std::atomic<uint64_t> prefaulted{0};   // bytes faulted in ahead of demand  // free slow paths since the last malloc one
std::atomic<uint64_t> released_sync{0}, released_async{0}, nticks{0};
}  // namespace
BTM_COLD_BSS void (*background_hook)();
namespace {
// Used by the tick holder only; no constructor runs at load.  In .lbss: only
// the background thread touches it, and .bss must stay on .data's page.
BTM_COLD_BSS constinit os::AsyncRelease ring;

// Bytes the next tick could give back: free pages, slabs whose remote frees
// nobody has drained, empty slabs kept for the next growth, and cached large
// blocks (their decay runs in ticks).
uint64_t pending_bytes() {
    return chunks::dirty_bytes() + g_remote_queued_bytes.load(std::memory_order_relaxed) +
           g_kept_bytes.load(std::memory_order_relaxed) + large::cached_bytes();
}

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

// Whether an aging tick is due.  The period starts at the first look, not at
// init: a process that never has pages waiting for a tick never reads the
// clock (its first read maps the vDSO's data page, a page fault).
bool tick_due() {
    uint64_t now = now_ns();
    uint64_t last = last_tick_ns.load(std::memory_order_relaxed);
    if (last == 0) {
        last_tick_ns.compare_exchange_strong(last, now, std::memory_order_relaxed);
        return false;
    }
    return now - last >= kTickNs;
}

// Whether the background thread may still use its ring: a filter installed
// after the ring was opened (seccomp(2) with TSYNC reaches this thread) may
// kill for io_uring_enter, so the thread looks again before each batch and
// drops the ring for good under one.  Dropping it closes and unmaps only.
bool ring_allowed() {
    if (!ring.is_open()) return false;
    if (async_under_filter || os::seccomp_mode() == 0) return true;
    ring.forget();
    return false;
}

// Releases one batch of what `mode` collects; returns the bytes released
// (0 when nothing was left).  Collected pages are out of the free set until
// finish_release(), so batches of several threads never overlap; the ring
// belongs to the tick_lock holder.
BTM_LATE size_t release_batch(chunks::Collect mode, bool use_ring, size_t* nranges = nullptr) {
    chunks::Range r[kBatch];
    size_t n = chunks::collect(r, kBatch, mode, warm);
    if (nranges) *nranges = n;
    if (n == 0) return 0;
    size_t bytes = 0;
    for (size_t i = 0; i < n; ++i) bytes += r[i].len;
    static_assert(sizeof(chunks::Range) == sizeof(os::PageRange));
    // memfd-backed chunks (mesh = on) are released by punching the file:
    // the ring's MADV_DONTNEED would keep their pages and contents.
    use_ring = use_ring && ring_allowed() && !g.mesh;
    size_t via_ring = use_ring ? ring.release(reinterpret_cast<const os::PageRange*>(r), n) : 0;
    if (!use_ring)
        for (size_t i = 0; i < n; ++i) {
            void* p = reinterpret_cast<void*>(r[i].addr);
            if (g.mesh) os::memfd::release(p, r[i].len);
            else os::release(p, r[i].len);
        }
    chunks::finish_release(r, n);
    released_async.fetch_add(via_ring, std::memory_order_relaxed);
    released_sync.fetch_add(bytes - via_ring, std::memory_order_relaxed);
    return bytes;
}

// Releases what `mode` collects, batch by batch; tick_lock held.
size_t release(chunks::Collect mode, bool use_ring) {
    size_t total = 0;
    for (;;) {
        size_t n;
        total += release_batch(mode, use_ring, &n);
        if (n < kBatch) break;
    }
    return total;
}

// One aging tick (or everything, for malloc_trim); tick_lock held.
size_t tick(bool all, bool use_ring) {
    large::decay();  // counted in the large blocks' own released bytes
    size_t total = 0;
    if (g_heap_ok) {  // not yet made in the start-up phase
        central::drain_all(all);  // remote frees can be all that keeps a slab alive
        total = release(all ? chunks::Collect::kAll : chunks::Collect::kAged, use_ring);
        total += release(chunks::Collect::kExcess, use_ring);
    }
    nticks.fetch_add(1, std::memory_order_relaxed);
    last_tick_ns.store(now_ns(), std::memory_order_relaxed);
    return total;
}

// Pre-faulting ahead of demand: while the heap grows into unfaulted memory,
// the thread keeps kReadyBytes of free pages faulted in (a new chunk mapped if
// need be), and slabs are made on resident pages first, so the page faults of
// growth land here instead of inside the mallocs that grow.
void prefault() {
    uint64_t target = kReadyBytes >> g.page_shift;
    chunks::Range r[16];
    size_t n = chunks::prefault_collect(r, 16, target);
    for (size_t i = 0; i < n; ++i) {
        os::populate(reinterpret_cast<void*>(r[i].addr), r[i].len);
        prefaulted.fetch_add(r[i].len, std::memory_order_relaxed);
    }
    chunks::finish_prefault(r, n);
}

void futex_wait(uint32_t expected, const timespec* timeout) {
    sys::futex(&wake_word, FUTEX_WAIT_PRIVATE, expected, timeout);
}

BTM_LATE void* thread_main(void*) {
    ++t_state.depth;  // never allocate through the heap from here
    if (async_under_filter || os::seccomp_mode() == 0) ring.open(kBatch);
    for (;;) {
        uint32_t seen = wake_word.load(std::memory_order_acquire);
        if (pending_bytes() == 0) {
            // Announce the sleep and re-arm kicks before the last look: a
            // poller that saw kicked still set (a kick that came while this
            // thread was busy) made its bytes visible before that, so the
            // look below sees them; one that kicks later changes wake_word,
            // so the wait returns at once.
            sleeping.store(true, std::memory_order_seq_cst);
            kicked.store(false, std::memory_order_seq_cst);
            std::atomic_thread_fence(std::memory_order_seq_cst);
            bool growing = chunks::clean_taken_pages() != clean_seen.load(std::memory_order_relaxed);
            if (growing) {
                timespec ts{0, long(kGrowNs)};  // growing: look again soon
                futex_wait(seen, &ts);
            } else if (pending_bytes() == 0) {
                // Nothing to age, no growth: sleep until woken (or look again
                // in a second for the background mesh, which a heap made
                // sparse without emptying any page gives no other reason).
                timespec mesh_look{1, 0};
                futex_wait(seen, background_hook ? &mesh_look : nullptr);
            }
            sleeping.store(false, std::memory_order_relaxed);
        } else {
            timespec ts{0, long(kTickNs)};
            futex_wait(seen, &ts);
        }
        kicked.store(false, std::memory_order_relaxed);
        // The heap grew into unfaulted memory since the last look: fault the
        // next pages in ahead of it.  (Decided here: a malloc wakes the
        // thread only when it sleeps without a timeout, since a futex wake
        // from every growing malloc cost more latency than it saved.)
        uint64_t clean = chunks::clean_taken_pages();
        if (clean != clean_seen.load(std::memory_order_relaxed)) {
            clean_seen.store(clean, std::memory_order_relaxed);
            prefault();
        }
        LockGuard guard(tick_lock);
        if (tick_due()) {
            tick(false, ring.is_open());
            if (background_hook) background_hook();
        }
        else release(chunks::Collect::kExcess, ring.is_open());  // woken early: over budget
    }
    return nullptr;
}

// Under a seccomp filter (or where the mode cannot be read) no thread: the
// filter may kill for clone3, or for io_uring_setup once the thread runs
// (systemd's SystemCallFilter= kills by default), and the inline path does
// the same work with calls every filter allows the program itself.  The new
// thread inherits this thread's filters, so this thread's mode is the one
// that counts.
BTM_LATE bool start_thread() {
    if (!async_under_filter && os::seccomp_mode() != 0) return false;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    // The thread inherits this mask: it must never run the program's handlers.
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);  // glibc: per thread, as pthread_sigmask (one symbol version fewer)
    pthread_t tid;
    ++t_state.depth;  // pthread_create may allocate: serve it from the boot arena
    bool ok = pthread_create(&tid, &attr, thread_main, nullptr) == 0;
    --t_state.depth;
    sigprocmask(SIG_SETMASK, &old, nullptr);
    pthread_attr_destroy(&attr);
    return ok;
}

}  // namespace

void init(bool async, bool under_filter, uint32_t warm_chunks) {
    async_wanted = async;
    async_under_filter = under_filter;
    warm = warm_chunks;
}

namespace {

// In synchronous mode, mallocs that the thread cache serves never reach a
// slow path: while pages wait for a tick, they are diverted to a path that
// polls every 256 calls (kDivertTick), and the tick that leaves nothing
// pending clears that.
void set_tick_divert(bool on) {
    uint8_t d = __atomic_load_n(&g.divert, __ATOMIC_RELAXED);
    bool has = d & kDivertTick;
    if (has == on) return;
    if (on) __atomic_fetch_or(&g.divert, kDivertTick, __ATOMIC_RELAXED);
    else __atomic_fetch_and(&g.divert, uint8_t(~kDivertTick), __ATOMIC_RELAXED);
}

}  // namespace

namespace {

// Helping episodes.  A mass free followed by a regrowth (a program that
// frees and rebuilds a big structure in cycles) would pay a release and a
// page fault for every page, every cycle: when slab memory grows back by
// half of what helping released before the episode goes quiet for
// kHelpQuietNs, helping stops for a while (1 s, doubling to 64 s), and the
// background thread's aging alone decides.
inline constexpr uint64_t kHelpQuietNs = 1'000'000'000;
std::atomic<uint64_t> help_bytes{0};     // released by helping in this episode
std::atomic<uint64_t> help_low{0};       // slab bytes when helping last ran
std::atomic<uint64_t> help_last_ns{0};
std::atomic<uint64_t> help_blocked_until{0};
std::atomic<uint32_t> help_backoff{0};

// The freeing thread's share of an over-budget release: one batch, inline
// (counted as synchronous), without the tick lock, which the thread may hold.
void help() {
    uint64_t now = now_ns();
    if (now < help_blocked_until.load(std::memory_order_relaxed)) return;
    ++t_state.depth;
    size_t n = release_batch(chunks::Collect::kExcess, false);
    --t_state.depth;
    help_bytes.fetch_add(n, std::memory_order_relaxed);
    help_low.store(chunks::slab_bytes(), std::memory_order_relaxed);
    help_last_ns.store(now, std::memory_order_relaxed);
}

// On a malloc slow path after an episode: did the heap grow back?
void watch_regrowth() {
    uint64_t released = help_bytes.load(std::memory_order_relaxed);
    if (!released) return;
    uint64_t now = now_ns();
    uint64_t slab = chunks::slab_bytes(), low = help_low.load(std::memory_order_relaxed);
    if (slab > low && (slab - low) * 2 > released) {
        uint32_t b = help_backoff.load(std::memory_order_relaxed);
        help_blocked_until.store(now + (kHelpQuietNs << b), std::memory_order_relaxed);
        if (b < 6) help_backoff.store(b + 1, std::memory_order_relaxed);
        help_bytes.store(0, std::memory_order_relaxed);
    } else if (now - help_last_ns.load(std::memory_order_relaxed) > kHelpQuietNs) {
        help_bytes.store(0, std::memory_order_relaxed);  // the episode ended with no regrowth
    }
}

}  // namespace

// Wakes the thread: one futex call until it has run (it clears `kicked`).
void kick() {
    if (kicked.load(std::memory_order_relaxed) || kicked.exchange(true)) return;
    sleeping.store(false, std::memory_order_relaxed);
    wake();
}

void poll(bool freeing) {
    if (t_state.depth || orphaned()) return;
    // A program still allocating would fault released pages back in inside
    // its mallocs: freeing threads help only after a run of kHelpRun free
    // slow paths with no malloc slow path between them (a mass free).
    uint32_t run = free_run.load(std::memory_order_relaxed);
    if (!freeing) {
        if (run) free_run.store(0, std::memory_order_relaxed);
        watch_regrowth();
        // Growth into unfaulted memory while the thread sleeps without a
        // timeout: one wake per growth episode (it then looks every kGrowNs
        // for as long as the heap keeps growing).
        if (started.load(std::memory_order_relaxed) && async_wanted &&
            chunks::clean_taken_pages() != clean_seen.load(std::memory_order_relaxed)) {
            std::atomic_thread_fence(std::memory_order_seq_cst);  // as below
            if (sleeping.load(std::memory_order_relaxed)) kick();
        }
    } else if (run < kHelpRun) {
        free_run.store(++run, std::memory_order_relaxed);
    }
    uint64_t pending = pending_bytes();
    // The background mesh needs the thread even with nothing to release.
    bool mesh_start = BTM_UNLIKELY(g.mesh) && background_hook && async_wanted && !started.load(std::memory_order_relaxed);
    if (pending == 0 && !mesh_start) {
        if (!async_wanted) set_tick_divert(false);
        return;
    }
    bool excess = chunks::dirty_excess() > 0;
    if (async_wanted) {
        if (started.load(std::memory_order_relaxed)) {
            // Over budget, or work for a thread that sleeps without a timeout.
            // (The fence orders the
            // bytes we just made pending before the flags we read: see
            // thread_main.)
            std::atomic_thread_fence(std::memory_order_seq_cst);
            if (excess || sleeping.load(std::memory_order_relaxed)) kick();
            // Over budget while the program only frees (a mass free empties
            // slabs faster than one thread can give pages back): the freeing
            // thread helps, one batch per slow path of free, which also paces
            // it to the release.
            if (excess && freeing && run >= kHelpRun) help();
            return;
        }
        if (pending < kStartThreadBytes && !excess && !mesh_start) return;
        bool expected = false;
        if (!started.compare_exchange_strong(expected, true)) return;
        if (start_thread()) return;
        async_wanted = false;  // no thread to be had: do the same work inline
    }
    set_tick_divert(true);
    bool due = tick_due();
    if (!due && !excess) return;
    if (!tick_lock.try_lock()) return;
    ++t_state.depth;
    if (due) tick(false, false);
    else release(chunks::Collect::kExcess, false);
    --t_state.depth;
    tick_lock.unlock();
}

BTM_STARTUP BTM_NOINLINE bool keeps_slabs() {  // when a slab empties: see settle_empty
    return async_wanted && started.load(std::memory_order_relaxed) &&
           free_run.load(std::memory_order_relaxed) < kHelpRun;
}

void wake() {
    wake_word.fetch_add(1, std::memory_order_release);
    sys::futex(&wake_word, FUTEX_WAKE_PRIVATE, 1, nullptr);
}

BTM_LATE size_t trim_all() {
    LockGuard guard(tick_lock);
    ++t_state.depth;
    size_t n = tick(true, false);
    --t_state.depth;
    return n;
}

Counters counters() {
    return Counters{released_sync.load(std::memory_order_relaxed), released_async.load(std::memory_order_relaxed),
                    nticks.load(std::memory_order_relaxed), started.load(std::memory_order_relaxed) && async_wanted,
                    ring.is_open(), prefaulted.load(std::memory_order_relaxed)};
}

void fork_prepare() { tick_lock.lock(); }
bool lock_held() { return tick_lock.is_locked(); }
void fork_parent() { tick_lock.unlock(); }
void fork_child() {
    tick_lock.reset();
    // The parent's thread does not exist here, and its ring is the parent's.
    ring.forget();
    started.store(false, std::memory_order_relaxed);
    wake_word.store(0, std::memory_order_relaxed);
}

}  // namespace btm::reclaim
