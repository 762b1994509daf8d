#include "features/mesh.h"

#include <linux/userfaultfd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>

#include "core/central.h"
#include "core/chunk.h"
#include "core/globals.h"
#include "core/lock.h"
#include "core/orphan.h"
#include "core/reclaim.h"
#include "core/thread_cache.h"
#include "features/report.h"
#include "os/memfd.h"
#include "os/os.h"
#include "os/syscall.h"

extern "C" int __register_atfork(void (*prepare)(), void (*parent)(), void (*child)(), void* dso);
extern "C" void* __dso_handle;

namespace btm::mesh {

namespace {

// Targets and their sources: an open-addressed table from a target slab to
// the first of its sources (the others chain through Slab::next).  Made at
// the first compaction; guarded by table_lock, taken inside central locks.
struct Record {
    Slab* target;
    Slab* first;
};
inline constexpr size_t kTableSlots = size_t(1) << 16;
// Each meshed source is a mapping of its own (up to two more VMAs): stay
// well below vm.max_map_count (65530 by default).
inline constexpr size_t kMaxSources = 20000;
// Out of the small globals' page (see BTM_COLD_BSS): only mesh touches them.
BTM_COLD_BSS Record* table;
BTM_COLD_BSS size_t nsources;
BTM_COLD_BSS SpinLock table_lock;

size_t slot_of(const Slab* t) {
    return size_t((reinterpret_cast<uintptr_t>(t) >> 6) * 0x9E3779B97F4A7C15ull >> 48) & (kTableSlots - 1);
}

Record* find(const Slab* t) {
    for (size_t i = slot_of(t);; i = (i + 1) & (kTableSlots - 1)) {
        if (table[i].target == t) return &table[i];
        if (!table[i].target) return nullptr;
    }
}

void add_source(Slab* t, Slab* s) {
    size_t i = slot_of(t);
    while (table[i].target && table[i].target != t) i = (i + 1) & (kTableSlots - 1);
    s->next = table[i].target ? table[i].first : nullptr;
    table[i] = Record{t, s};
    ++nsources;
}

// Removes t's record (backward-shift deletion keeps every probe chain whole).
Slab* take_sources(const Slab* t) {
    Record* r = find(t);
    if (!r) return nullptr;
    Slab* first = r->first;
    for (Slab* s = first; s; s = s->next) --nsources;
    size_t hole = size_t(r - table);
    for (size_t i = (hole + 1) & (kTableSlots - 1); table[i].target; i = (i + 1) & (kTableSlots - 1)) {
        size_t home = slot_of(table[i].target);
        if (((i - home) & (kTableSlots - 1)) >= ((i - hole) & (kTableSlots - 1))) {
            table[hole] = table[i];
            hole = i;
        }
    }
    table[hole] = Record{nullptr, nullptr};
    return first;
}

uint64_t file_offset(uintptr_t a, unsigned region) { return a - chunks::regions[region].base; }

[[noreturn]] void fatal(const char* what) {
    report::Line line;
    line.str("btmalloc: mesh: ").str(what);
    report::fatal(line);
}

// slab_free()'s hook: a target going back to the page heap first gives its
// sources their own (punched, so zero) file pages again, then frees them.
void unmesh(Slab* t) {
    Slab* s;
    {
        LockGuard guard(table_lock);
        s = take_sources(t);
    }
    while (s) {
        Slab* next = s->next;
        uintptr_t a = reinterpret_cast<uintptr_t>(slab_base(s));
        unsigned r = chunks::region_of(a);
        size_t len = size_t(s->npages) << g.page_shift;
        if (!os::memfd::map(reinterpret_cast<void*>(a), len, chunks::backing_fd(r), file_offset(a, r)))
            fatal("could not map a meshed slab's pages back");
        s->list = kListNone;
        s->next = s->prev = nullptr;
        chunks::slab_free(s);
        s = next;
    }
}

// Scratch for one pair's candidates: their slabs, live-slot bitmaps, order.
inline constexpr uint32_t kMaxWords = 8;  // classes of up to 512 slots a slab
inline constexpr uint32_t kMaxCandidates = 1u << 16;
struct Scratch {
    Slab* slab[kMaxCandidates];
    uint64_t bits[kMaxCandidates][kMaxWords];
    uint16_t live[kMaxCandidates];
    uint32_t order[kMaxCandidates];
    uint32_t targets[kMaxCandidates];
    uint8_t absorbed[kMaxCandidates];
};
BTM_COLD_BSS Scratch* scratch;

// The live slots of slab s as a bitmap: handed out (below bump) and not on
// its free list.  False if that disagrees with s->used (slots held
// somewhere the compaction cannot see): such a slab is left alone.
bool live_bits(const Slab* s, uint32_t cls, uint64_t* bits, uint16_t* live) {
    const ClassInfo& ci = g_class[cls];
    uint32_t words = (ci.capacity + 63) / 64;
    for (uint32_t w = 0; w < words; ++w) {
        uint32_t lo = w * 64;
        uint32_t n = s->bump > lo ? s->bump - lo : 0;
        bits[w] = n >= 64 ? ~uint64_t(0) : (uint64_t(1) << n) - 1;
    }
    uintptr_t base = reinterpret_cast<uintptr_t>(slab_base(s));
    const void* p = s->free;
    for (uint32_t i = 0; i < s->free_count; ++i) {
        uintptr_t off = reinterpret_cast<uintptr_t>(p) - base;
        if (off >= uintptr_t(ci.capacity) * ci.size) return false;
        uint32_t j = uint32_t(off / ci.size);
        bits[j / 64] &= ~(uint64_t(1) << (j % 64));
        p = link_decode(p);
    }
    uint32_t n = 0;
    for (uint32_t w = 0; w < words; ++w) n += popcount64(bits[w]);
    *live = uint16_t(n);
    return n == s->used && n > 0;
}

bool disjoint(const uint64_t* a, const uint64_t* b, uint32_t words) {
    for (uint32_t w = 0; w < words; ++w)
        if (a[w] & b[w]) return false;
    return true;
}

// Other threads of the program run during this compaction: every source
// is write-protected while it is meshed.
BTM_COLD_BSS bool shared_world;

// The write barrier: userfaultfd write-protection of the source while it is
// copied and remapped.  A thread writing it meanwhile (in user mode or in a
// system call) blocks in the kernel until the remap is done and is then
// woken; its write lands in the target's page.  No signal is involved.
// Usable only without UFFD_USER_MODE_ONLY (vm.unprivileged_userfaultfd = 1
// or CAP_SYS_PTRACE: a read(2) into the page must block, not fail with
// EFAULT) and with write-protection of shmem pages, present or not.
BTM_COLD_BSS int uffd;          // + 1; 0: none
BTM_COLD_BSS bool uffd_probed;
constexpr uint64_t kWpUnpopulated = uint64_t(1) << 13;  // UFFD_FEATURE_WP_UNPOPULATED (6.4)

long uffd_ioctl(int fd, unsigned long op, void* arg) { return sys::call(SYS_ioctl, fd, long(op), sys::arg(arg)); }

int barrier() {
    if (uffd_probed) return uffd - 1;
    uffd_probed = true;
    const uint64_t want = UFFD_FEATURE_WP_HUGETLBFS_SHMEM | kWpUnpopulated;
    // The first handshake asks what the kernel offers, the second takes it
    // (a descriptor allows one).
    for (int round = 0; round < 2; ++round) {
        long fd = sys::call(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (sys::failed(fd)) return -1;
        uffdio_api api{};
        api.api = UFFD_API;
        api.features = round ? want : 0;
        bool ok = uffd_ioctl(int(fd), UFFDIO_API, &api) == 0 && (api.features & want) == want &&
                  (api.ioctls & (uint64_t(1) << _UFFDIO_REGISTER));
        if (!ok || round == 0) sys::close(int(fd));
        if (!ok) return -1;
        if (round) uffd = int(fd) + 1;
    }
    return uffd - 1;
}

bool protect(int fd, void* p, size_t len) {
    uffdio_register reg{};
    reg.range = {reinterpret_cast<uintptr_t>(p), len};
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    if (uffd_ioctl(fd, UFFDIO_REGISTER, &reg) != 0) return false;
    uffdio_writeprotect wp{};
    wp.range = reg.range;
    wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    if (uffd_ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0) return true;
    uffd_ioctl(fd, UFFDIO_UNREGISTER, &reg.range);
    return false;
}

// After the remap (the registered mapping is gone): wakes the writers that
// blocked on the old one; they fault again on the target's page.
void wake(int fd, void* p, size_t len) {
    uffdio_range r{reinterpret_cast<uintptr_t>(p), len};
    uffd_ioctl(fd, UFFDIO_WAKE, &r);
}

// Meshes source s into target t (central lock held); false if the remap
// failed, with s untouched.
bool mesh_one(Central& c, Slab* s, Slab* t, const uint64_t* sbits, uint32_t cls) {
    const ClassInfo& ci = g_class[cls];
    char* sb = slab_base(s);
    char* tb = slab_base(t);
    size_t len = size_t(s->npages) << g.page_shift;
    const int wp = shared_world ? barrier() : -1;
    if (shared_world && (wp < 0 || !protect(wp, sb, len))) return false;
    for (uint32_t w = 0; w < (ci.capacity + 63u) / 64; ++w)
        for (uint64_t m = sbits[w]; m; m &= m - 1) {
            size_t off = size_t(w * 64 + unsigned(__builtin_ctzll(m))) * ci.size;
            memcpy(tb + off, sb + off, ci.size);
        }
    uintptr_t sa = reinterpret_cast<uintptr_t>(sb), ta = reinterpret_cast<uintptr_t>(tb);
    unsigned rs = chunks::region_of(sa), rt = chunks::region_of(ta);
    bool moved = os::memfd::map(sb, len, chunks::backing_fd(rt), file_offset(ta, rt));
    // Failed: the source's own pages again (unprotected: a fresh mapping).
    if (!moved && !os::memfd::map(sb, len, chunks::backing_fd(rs), file_offset(sa, rs)))
        fatal("a failed remap left a slab unmapped");
    if (wp >= 0) wake(wp, sb, len);
    if (!moved) return false;
    os::memfd::punch(chunks::backing_fd(rs), file_offset(sa, rs), len);
    central::mesh_retire(c, s);
    s->prev = t;
    s->list = kListMeshed;
    s->used = 0;
    s->free = nullptr;
    s->free_count = 0;
    {
        LockGuard guard(table_lock);
        add_source(t, s);
    }
    chunks::mark_meshed(s);
    return true;
}

// A target's free list, rebuilt from its merged live bitmap: every slot
// free in both slabs, in address order.
void rebuild(Slab* t, const uint64_t* bits, uint32_t cls) {
    const ClassInfo& ci = g_class[cls];
    char* base = slab_base(t);
    void* head = nullptr;
    uint32_t nfree = 0;
    for (uint32_t j = ci.capacity; j-- > 0;) {
        if (bits[j / 64] >> (j % 64) & 1) continue;
        void* p = base + size_t(j) * ci.size;
        link_encode(p, head);
        if constexpr (kHardening) mark_free(p);
        head = p;
        ++nfree;
    }
    t->free = head;
    t->free_count = uint16_t(nfree);
    t->bump = ci.capacity;
    t->used = uint16_t(ci.capacity - nfree);
    t->fresh = t->zero = false;
}

// Meshes one pair's slabs: densest first, each either absorbed by the first
// earlier target it is disjoint from or made a target itself.  Returns the
// bytes released.
size_t mesh_pair(Central& c) {
    const uint32_t cls = class_of_central(c);
    const ClassInfo& ci = g_class[cls];
    const uint32_t words = (ci.capacity + 63u) / 64;
    if (words > kMaxWords || ci.capacity < 2) return 0;
    Scratch& k = *scratch;
    LockGuard guard(c.lock);
    uint32_t n = central::mesh_candidates(c, k.slab, kMaxCandidates);
    if (n < 2) return 0;
    // Counting sort by live slots, densest first.
    uint32_t count[513] = {};
    uint32_t usable = 0;
    for (uint32_t i = 0; i < n; ++i) {
        Slab* s = k.slab[i];
        uintptr_t a = reinterpret_cast<uintptr_t>(slab_base(s));
        k.absorbed[i] = 0;
        if (chunks::backing_fd(chunks::region_of(a)) < 0 || !live_bits(s, cls, k.bits[i], &k.live[i])) {
            k.live[i] = 0;
            continue;
        }
        ++count[ci.capacity - k.live[i]];
        ++usable;
    }
    for (uint32_t i = 1; i <= ci.capacity; ++i) count[i] += count[i - 1];
    for (uint32_t i = n; i-- > 0;)
        if (k.live[i]) k.order[--count[ci.capacity - k.live[i]]] = i;
    size_t released = 0;
    uint32_t ntargets = 0;
    for (uint32_t o = 0; o < usable; ++o) {
        uint32_t i = k.order[o];
        Slab* s = k.slab[i];
        bool may_go = nsources < kMaxSources;
        if (may_go) {
            LockGuard tl(table_lock);
            may_go = find(s) == nullptr;  // a target keeps its sources' pages: it stays
        }
        uint32_t found = ntargets;
        for (uint32_t j = 0; may_go && j < ntargets; ++j) {
            uint32_t t = k.targets[j];
            if (k.live[t] + k.live[i] <= ci.capacity && disjoint(k.bits[t], k.bits[i], words)) {
                found = j;
                break;
            }
        }
        if (found == ntargets || !mesh_one(c, s, k.slab[k.targets[found]], k.bits[i], cls)) {
            k.targets[ntargets++] = i;
            continue;
        }
        uint32_t t = k.targets[found];
        for (uint32_t w = 0; w < words; ++w) k.bits[t][w] |= k.bits[i][w];
        k.live[t] = uint16_t(k.live[t] + k.live[i]);
        k.absorbed[t] = 1;
        released += size_t(s->npages) << g.page_shift;
    }
    for (uint32_t j = 0; j < ntargets; ++j) {
        uint32_t t = k.targets[j];
        if (!k.absorbed[t]) continue;
        rebuild(k.slab[t], k.bits[t], cls);
        central::mesh_settle(c, k.slab[t]);
    }
    return released;
}

// Threads of the process other than the caller and btmalloc's own.
long other_threads() {
    long fd = sys::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sys::failed(fd)) return -1;
    alignas(8) char buf[2048];
    long n, tasks = 0;
    while ((n = sys::getdents64(int(fd), buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            const char* name = buf + off + 19;  // struct linux_dirent64: d_name
            tasks += name[0] != '.';
            off += *reinterpret_cast<const uint16_t*>(buf + off + 16);
        }
    }
    sys::close(int(fd));
    if (n < 0) return -1;
    return tasks - 1 - (reclaim::counters().thread_running ? 1 : 0);
}

void say(const char* what, long n = -1) {
    if (!g_cfg.verbose) return;
    report::Line line;
    line.str("btmalloc: ").str(what);
    if (n > 0) line.dec(uint64_t(n)).str(" other thread(s) run and no write barrier (userfaultfd write-protection of shared memory, without UFFD_USER_MODE_ONLY) is available");
    if (n < 0) line.str("the threads cannot be counted (/proc/self/task)");
    line.emit();
}

void block_signals(sigset_t* old) {
    sigset_t all;
    sigfillset(&all);
    sys::call(SYS_rt_sigprocmask, SIG_SETMASK, sys::arg(&all), sys::arg(old), 8);
}
void restore_signals(const sigset_t* old) { sys::call(SYS_rt_sigprocmask, SIG_SETMASK, sys::arg(old), 0, 8); }

// fork(): the child must not share the parent's heap file.  The prepare
// handler runs after the heap's (which took every lock), the parent's and
// the child's before the heap's (registered first): the parent waits,
// locks held, until the child has copied the file into a new one and
// mapped it over every range with the same layout.
BTM_COLD_BSS int fork_pipe[2];
BTM_COLD_BSS bool have_pipe;

void fork_prepare() {
    if (!g.mesh) return;
    table_lock.lock();
    have_pipe = os::memfd::pipe(fork_pipe);
}

void fork_parent() {
    if (!g.mesh) return;
    if (have_pipe) {
        os::memfd::close(fork_pipe[1]);
        os::memfd::wait_done(fork_pipe[0]);  // a byte, or the end: no child
        os::memfd::close(fork_pipe[0]);
    }
    table_lock.unlock();
}

void fork_child() {
    if (!g.mesh) return;
    // A userfaultfd acts on the address space that made it (the parent's):
    // the child probes for its own when it needs one.
    if (uffd) os::memfd::close(uffd - 1);
    uffd = 0;
    uffd_probed = false;
    constexpr size_t kBounce = size_t(1) << 20;
    void* bounce = os::map(kBounce);
    unsigned n = chunks::nregions.load(std::memory_order_relaxed);
    int fresh[chunks::kMaxRegions];
    for (unsigned r = 0; r < n; ++r) {
        fresh[r] = -1;
        int old = chunks::backing_fd(r);
        const chunks::Region& reg = chunks::regions[r];
        if (old < 0 || reg.used == 0) continue;
        fresh[r] = os::memfd::create(reg.size);
        if (fresh[r] < 0 || !bounce || !os::memfd::copy(old, fresh[r], reg.used, bounce, kBounce) ||
            !os::memfd::map(reinterpret_cast<void*>(reg.base), reg.used, fresh[r], 0))
            fatal("fork: could not give the child a heap of its own");
    }
    for (size_t i = 0; table && i < kTableSlots; ++i) {
        Slab* t = table[i].target;
        if (!t) continue;
        uintptr_t ta = reinterpret_cast<uintptr_t>(slab_base(t));
        unsigned rt = chunks::region_of(ta);
        for (Slab* s = table[i].first; s; s = s->next)
            if (!os::memfd::map(slab_base(s), size_t(s->npages) << g.page_shift, fresh[rt], file_offset(ta, rt)))
                fatal("fork: could not map a meshed slab in the child");
    }
    for (unsigned r = 0; r < n; ++r)
        if (fresh[r] >= 0 && !os::memfd::replace(fresh[r], chunks::backing_fd(r)))
            fatal("fork: could not keep the heap file's descriptor");
    if (bounce) os::unmap(bounce, kBounce);
    if (have_pipe) {
        os::memfd::signal_done(fork_pipe[1]);
        os::memfd::close(fork_pipe[0]);
        os::memfd::close(fork_pipe[1]);
    }
    table_lock.reset();
}

// One compaction at a time (the scratch, the barrier's probe).
BTM_COLD_BSS SpinLock compact_lock;

// Meshes every pair; `shared`: other threads run (the barrier is there).
size_t mesh_all(bool shared) {
    size_t released = 0;
    if (!table) table = static_cast<Record*>(os::map(kTableSlots * sizeof(Record)));
    if (!scratch) scratch = static_cast<Scratch*>(os::map(sizeof(Scratch)));
    if (table && scratch) {
        chunks::unmesh_hook = unmesh;
        shared_world = shared;
        // A signal handler writing an object between its copy and the
        // remap would lose the write (without the barrier), or wait for its
        // own thread's wake (with it): none runs meanwhile.
        sigset_t old;
        block_signals(&old);
        central::for_each_used([&](Central& c) { released += mesh_pair(c); });
        restore_signals(&old);
    }
    // The scratch is megabytes for a big pair: not kept resident.
    if (scratch) os::unmap(scratch, sizeof(Scratch));
    scratch = nullptr;
    return released;
}

// The background thread's pass after an aging tick (knob mesh_below): when
// live bytes are below the threshold's share of the bytes in slabs, and
// they changed since the last pass.  Always beside the program's threads,
// so only with the barrier.
BTM_COLD_BSS uint64_t bg_seen;

void background() {
    uint64_t slab = chunks::slab_bytes();
    uint64_t live = 0;
    central::for_each_used([&](Central& c) { live += __atomic_load_n(&c.out_bytes, __ATOMIC_RELAXED); });
    if (slab < (uint64_t(1) << 20) || live * 100 >= slab * g_cfg.mesh_below || live == bg_seen) return;
    bg_seen = live;
    if (!compact_lock.try_lock()) return;
    if (barrier() >= 0) mesh_all(true);
    compact_lock.unlock();
}

}  // namespace

BTM_STARTUP void configure() {
    if (!g_cfg.mesh) return;
    if (!g_cfg.seccomp_async && os::seccomp_mode() != 0) {
        say("mesh = on, but a seccomp filter (or no /proc) may refuse memfd and remapping: mesh stays off");
        return;
    }
    int fd = os::memfd::create(uint64_t(1) << g.page_shift);
    if (fd < 0) {
        say("mesh = on, but memfd_create failed: mesh stays off");
        return;
    }
    os::memfd::close(fd);
    g.mesh = true;
    if (g_cfg.mesh_below) reclaim::background_hook = background;
}

void register_fork() { __register_atfork(fork_prepare, fork_parent, fork_child, &__dso_handle); }

size_t compact() {
    if (!g.initialized || !g_heap_ok || !g.mesh) {
        errno = ENOTSUP;
        return 0;
    }
    if (t_state.depth || orphaned()) return 0;
    ++t_state.depth;
    // The caller's cached slots and fresh runs go home first: afterwards
    // every slot is either with the program or on its slab's free list.
    tcache::flush_all();
    long others = other_threads();
    size_t released = 0;
    compact_lock.lock();
    if (others != 0 && (others < 0 || barrier() < 0)) {
        say("btm_compact: not meshing: ", others);
        errno = EBUSY;
    } else {
        released = mesh_all(others != 0);
    }
    compact_lock.unlock();
    --t_state.depth;
    return released;
}

}  // namespace btm::mesh
