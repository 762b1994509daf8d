// The process that reclaim_test starts for each memory-return scenario, in an
// environment the test chose (BTM_ASYNC=on/off, ...), so that every scenario
// begins in a fresh process: no background thread yet, no dirty pages, a
// known starting RSS.  It links the shared libbtmalloc, so its malloc is
// btmalloc's.
//
//   reclaim_child SCENARIO [key=value ...]
//
// It prints its measurements as "key value" lines on stdout and corruption
// reports as "error: ..." lines on stderr; reclaim_test makes the
// assertions.  The exit status is 0 when the scenario ran to its end (even if
// a measurement is bad), 1 on bad usage or a failed setup step, and 2 when
// the object contents were corrupted.
//
// Scenarios:
//   rss      allocate a mixed set (small, medium and large objects), touch,
//            free it in random order, optionally stay idle for idle_first_ms,
//            then wait for the resident size to come back (phase=idle: no
//            allocator calls at all; phase=drive: allocator calls every 50 ms,
//            drive=burst: 512 objects of 64 B, more than a cache bin holds;
//            drive=steady: four small objects from four call sites)
//   trim     allocate, free, malloc_trim(0) at once, twice
//   stress   threads grow to a peak, free 90% at random (some of it from other
//            threads), pause, verify every survivor, regrow, ... while pages
//            are released around the survivors
//   seccomp  installs a seccomp filter for io_uring_setup, _enter and
//            _register as the first thing in main (action=eperm, enosys, kill,
//            kill_process or trap; eperm by default), then the stress
//            workload, then waits for memory to come back; with when=late the
//            filter goes in (with SECCOMP_FILTER_FLAG_TSYNC, so it reaches the
//            reclaim thread) after a first stress that opened the ring;
//            drive=burst drives the allocator while waiting (inline return)
//   fork     one thread allocates and frees big sets in a loop (keeping the
//            reclaim thread busy) while the main thread forks; each child
//            verifies, allocates, frees, malloc_trims and exits
//   lazy     allocates a few KB and reports the threads; then frees MBs and
//            waits for the reclaim thread to appear (or not, with async=off)
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "btmalloc.h"
#include "reclaim_probe.h"
#include "test_support.h"

namespace {

using btm_test::Rng;
using reclaim_test::mono_ms;
using reclaim_test::rss_bytes;
using reclaim_test::say;
using reclaim_test::sleep_ms;
using reclaim_test::stats_now;
using reclaim_test::task_count;

constexpr uint64_t kMiB = uint64_t(1) << 20;

// ------------------------------------------------------------------ options

int g_argc;
char** g_argv;

uint64_t opt(const char* key, uint64_t def) {
    size_t k = strlen(key);
    for (int i = 2; i < g_argc; ++i)
        if (strncmp(g_argv[i], key, k) == 0 && g_argv[i][k] == '=') return strtoull(g_argv[i] + k + 1, nullptr, 10);
    return def;
}
std::string opt_str(const char* key, const char* def) {
    size_t k = strlen(key);
    for (int i = 2; i < g_argc; ++i)
        if (strncmp(g_argv[i], key, k) == 0 && g_argv[i][k] == '=') return g_argv[i] + k + 1;
    return def;
}

void put(const char* key, uint64_t v) { say(1, "%s %llu\n", key, static_cast<unsigned long long>(v)); }
void put_signed(const char* key, int64_t v) { say(1, "%s %lld\n", key, static_cast<long long>(v)); }

[[noreturn]] void fail_setup(const char* what) {
    say(2, "error: setup: %s: %s\n", what, strerror(errno));
    _exit(1);
}

// Every counter of interest, prefixed (e.g. "freed.dirty_bytes 123").
void put_stats(const char* prefix, const struct btm_stats& s) {
    say(1,
        "%s.resident_bytes %llu\n%s.committed_bytes %llu\n%s.allocated_bytes %llu\n%s.dirty_bytes %llu\n"
        "%s.free_chunks %llu\n%s.released_bytes_sync %llu\n%s.released_bytes_async %llu\n"
        "%s.reclaim_thread %llu\n%s.reclaim_uring %llu\n%s.slabs %llu\n%s.chunks %llu\n"
        "%s.large_cached_bytes %llu\n%s.malloc_calls_slow %llu\n",
        prefix, (unsigned long long)s.resident_bytes, prefix, (unsigned long long)s.committed_bytes, prefix,
        (unsigned long long)s.allocated_bytes, prefix, (unsigned long long)s.dirty_bytes, prefix,
        (unsigned long long)s.free_chunks, prefix, (unsigned long long)s.released_bytes_sync, prefix,
        (unsigned long long)s.released_bytes_async, prefix, (unsigned long long)s.reclaim_thread, prefix,
        (unsigned long long)s.reclaim_uring, prefix, (unsigned long long)s.slabs, prefix,
        (unsigned long long)s.chunks, prefix, (unsigned long long)s.large_cached_bytes, prefix,
        (unsigned long long)s.malloc_calls_slow);
}

uint64_t released(const struct btm_stats& s) { return s.released_bytes_sync + s.released_bytes_async; }

// ------------------------------------------------------------------ objects

struct Obj {
    unsigned char* p;
    size_t size;
    uint64_t tag;
};

std::atomic<uint64_t> g_corrupt{0};

// Reports a corrupted object: where the first bad byte is, and whether the
// bytes from there to the end of its page read as zeros (what a page released
// under a live object looks like).
void report_corrupt(const Obj& o, size_t off, const char* when) {
    uint64_t n = g_corrupt.fetch_add(1);
    if (n >= 8) return;
    uintptr_t bad = reinterpret_cast<uintptr_t>(o.p) + off;
    size_t page = size_t(sysconf(_SC_PAGESIZE));
    size_t to_page_end = page - (bad & (page - 1));
    size_t span = std::min(to_page_end, o.size - off);
    bool zeros = btm_test::first_nonzero(o.p + off, span) == span;
    say(2,
        "error: %s: object %p size %zu tag %llx: byte %zu (address %p, page offset %zu) is 0x%02x, expected 0x%02x;"
        " the rest of that page within the object is %s\n",
        when, static_cast<void*>(o.p), o.size, static_cast<unsigned long long>(o.tag), off,
        reinterpret_cast<void*>(bad), size_t(bad & (page - 1)), o.p[off], btm_test::pattern_byte(o.tag, off),
        zeros ? "all zero (a released page?)" : "not all zero");
}

bool verify(const Obj& o, const char* when) {
    size_t off = btm_test::check_pattern(o.p, o.size, o.tag);
    if (off == o.size) return true;
    report_corrupt(o, off, when);
    return false;
}

void verify_and_free(const Obj& o, const char* when) {
    verify(o, when);
    free(o.p);
}

// Distinct call sites, so a call-site partitioned allocator spreads the load
// over several partitions; noipa keeps every instantiation a real function.
template <int I>
__attribute__((noipa)) void* site_malloc(size_t n) {
    void* p = malloc(n);
    btm_test::escape(p);
    return p;
}
template <int I>
__attribute__((noipa)) void* site_calloc(size_t n) {
    void* p = calloc(1, n);
    btm_test::escape(p);
    return p;
}
constexpr int kSites = 16;
template <int... I>
constexpr auto make_malloc_sites(std::integer_sequence<int, I...>) {
    return std::array<void* (*)(size_t), sizeof...(I)>{&site_malloc<I>...};
}
template <int... I>
constexpr auto make_calloc_sites(std::integer_sequence<int, I...>) {
    return std::array<void* (*)(size_t), sizeof...(I)>{&site_calloc<I>...};
}
constexpr auto kMallocSites = make_malloc_sites(std::make_integer_sequence<int, kSites>{});
// Sites 100-103: only the "steady" allocator calls use them.
constexpr std::array<void* (*)(size_t), 4> kSteadySites = {&site_malloc<100>, &site_malloc<101>, &site_malloc<102>,
                                                           &site_malloc<103>};
constexpr auto kCallocSites = make_calloc_sites(std::make_integer_sequence<int, kSites>{});

// An array of objects in its own mapping, so the bookkeeping of a 300 MB set
// neither goes through the allocator under test nor counts in its figures.
class Table {
   public:
    explicit Table(size_t capacity) : cap_(capacity) {
        void* m = mmap(nullptr, cap_ * sizeof(Obj), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) fail_setup("mmap of the object table");
        v_ = static_cast<Obj*>(m);
    }
    ~Table() { munmap(v_, cap_ * sizeof(Obj)); }
    Table(const Table&) = delete;
    Table& operator=(const Table&) = delete;
    bool full() const { return n_ == cap_; }
    void push(const Obj& o) { v_[n_++] = o; }
    Obj& operator[](size_t i) { return v_[i]; }
    size_t size() const { return n_; }
    // Empties the table and gives its pages back, so they do not count in the
    // resident size the test measures.
    void clear() {
        if (n_ > 0) madvise(v_, n_ * sizeof(Obj), MADV_DONTNEED);
        n_ = 0;
    }
    void shuffle(Rng& rng) {
        for (size_t i = n_; i > 1; --i) std::swap(v_[i - 1], v_[rng.below(i)]);
    }

   private:
    size_t cap_;
    size_t n_ = 0;
    Obj* v_;
};

enum class Kind { kSmall, kMedium, kLarge };

size_t draw(Kind k, Rng& rng) {
    switch (k) {
        case Kind::kSmall:
            return 16 + rng.below(1009);  // 16..1024 B
        case Kind::kMedium:
            return 1025 + rng.below(rng.chance(70) ? 16 * 1024 : 127 * 1024);  // to 128 KiB: slab classes
        case Kind::kLarge:
            return 256 * 1024 + rng.below(4 * kMiB - 256 * 1024);  // own mappings
    }
    return 16;
}

// Allocates about `bytes` in small/medium/large objects (percent of the bytes
// in each), interleaved, every byte written with the object's pattern.
// Returns false if malloc failed.
bool allocate_set(Table& t, uint64_t bytes, unsigned small_pct, unsigned medium_pct, Rng& rng, uint64_t tag_base) {
    uint64_t want[3] = {bytes * small_pct / 100, bytes * medium_pct / 100, 0};
    want[2] = bytes - want[0] - want[1];
    uint64_t got[3] = {0, 0, 0};
    for (uint64_t i = 0;; ++i) {
        // The kind furthest behind its share goes next.
        int k = -1;
        double best = 1.0;
        for (int j = 0; j < 3; ++j) {
            if (want[j] == 0 || got[j] >= want[j]) continue;
            double frac = double(got[j]) / double(want[j]);
            if (frac < best) best = frac, k = j;
        }
        if (k < 0 || t.full()) return true;
        size_t n = draw(Kind(k), rng);
        auto* p = static_cast<unsigned char*>(kMallocSites[i % kSites](n));
        if (!p) {
            say(2, "error: malloc(%zu) failed after %llu bytes\n", n, (unsigned long long)(got[0] + got[1] + got[2]));
            return false;
        }
        Obj o{p, n, tag_base + i};
        btm_test::fill_pattern(p, n, o.tag);
        t.push(o);
        got[k] += n;
    }
}

void free_set(Table& t, Rng& rng) {
    t.shuffle(rng);
    for (size_t i = 0; i < t.size(); ++i) verify_and_free(t[i], "before free");
    t.clear();
}

// ------------------------------------------------------------------ rss, trim

// A few allocator calls, as a mostly idle process makes them: with async=off
// these are what run the aging ticks.
void drive_step(const std::string& how, Rng& rng) {
    if (how == "burst") {
        // More objects than a thread cache bin holds, so the refills and
        // flushes take the slow paths, where the inline ticks run.
        void* v[512];
        for (auto& p : v) {
            p = kMallocSites[3](64);
            memset(p, 0x3c, 64);
        }
        for (auto& p : v) free(p);
        return;
    }
    // "steady": what a mostly idle service does now and then: a few small
    // objects of the same sizes from the same call sites each time (sites of
    // their own, which the big set does not use).
    static constexpr size_t kSizes[4] = {24, 64, 160, 400};
    for (int i = 0; i < 4; ++i) {
        void* p = kSteadySites[i](kSizes[i]);
        memset(p, 0x5a, kSizes[i]);
        free(p);
    }
    (void)rng;
}

// Polls every 10 ms (driving the allocator every 50 ms if asked) until the
// resident size is within `slack` of rss0 and the dirty bytes are at most
// `dirty_max`, or until the timeout.  Prints the outcome under `prefix`.
void settle(const char* prefix, uint64_t rss0, uint64_t slack, uint64_t dirty_max, uint64_t timeout_ms,
            const std::string& drive, Rng& rng) {
    uint64_t start = mono_ms(), last_drive = 0;
    int64_t settled_ms = -1;
    uint64_t drives = 0;
    for (;;) {
        uint64_t now = mono_ms();
        struct btm_stats s = stats_now();
        uint64_t rss = rss_bytes();
        if (rss <= rss0 + slack && s.dirty_bytes <= dirty_max) {
            settled_ms = int64_t(now - start);
            break;
        }
        if (now - start >= timeout_ms) break;
        if (drive != "none" && now - last_drive >= 50) {
            drive_step(drive, rng);
            last_drive = now;
            ++drives;
        }
        sleep_ms(10);
    }
    char key[64];
    snprintf(key, sizeof key, "%s.settled_ms", prefix);
    put_signed(key, settled_ms);
    snprintf(key, sizeof key, "%s.drives", prefix);
    put(key, drives);
    snprintf(key, sizeof key, "%s.rss", prefix);
    put(key, rss_bytes());
    snprintf(key, sizeof key, "%s.tasks", prefix);
    put_signed(key, task_count());
    put_stats(prefix, stats_now());
}

void warm_up() {
    // Initialise the allocator and this thread's cache, so the starting RSS
    // includes them.
    for (int i = 0; i < 64; ++i) {
        void* p = kMallocSites[i % kSites](32 + i);
        btm_test::escape(p);
        free(p);
    }
}

int scenario_rss() {
    const uint64_t bytes = opt("mb", 256) * kMiB;
    const std::string phase = opt_str("phase", "idle");  // idle | drive
    const std::string drive = phase == "drive" ? opt_str("drive", "burst") : "none";  // burst | steady
    const uint64_t slack = opt("slack_mib", 32) * kMiB;
    const uint64_t dirty_max = opt("dirty_kib", 1024) * 1024;
    const uint64_t timeout = opt("timeout_ms", 5000);
    const uint64_t idle_first = opt("idle_first_ms", 0);
    Rng rng(opt("seed", 1));
    warm_up();
    // The steady calls begin before the big set: their cache bins are warm
    // when it is freed, as in a service that has been running for a while.
    if (drive == "steady") drive_step(drive, rng);
    put("start.tasks", uint64_t(task_count()));
    uint64_t rss0 = rss_bytes();
    put("start.rss", rss0);
    put_stats("start", stats_now());

    Table t(4u << 20);
    if (!allocate_set(t, bytes, 50, 30, rng, 1u << 20)) return 1;
    put("peak.rss", rss_bytes());
    put("peak.objects", t.size());
    put_stats("peak", stats_now());

    uint64_t t0 = mono_ms();
    free_set(t, rng);
    put("free.ms", mono_ms() - t0);
    // The steady calls right after the free: if the free left one of their
    // bins empty or full, this round takes the slow path now, not later.
    if (drive == "steady") drive_step(drive, rng);
    put("freed.rss", rss_bytes());
    put_signed("freed.tasks", task_count());
    put_stats("freed", stats_now());

    if (idle_first) {
        // No allocator calls at all for a while: what happens on its own.
        sleep_ms(unsigned(idle_first));
        put("idle.rss", rss_bytes());
        put_signed("idle.tasks", task_count());
        put_stats("idle", stats_now());
    }
    settle("settle", rss0, slack, dirty_max, timeout, drive, rng);
    return g_corrupt ? 2 : 0;
}

int scenario_trim() {
    const uint64_t bytes = opt("mb", 128) * kMiB;
    const unsigned small_pct = unsigned(opt("small_pct", 50));
    const unsigned medium_pct = unsigned(opt("medium_pct", 30));
    Rng rng(opt("seed", 2));
    warm_up();
    uint64_t rss0 = rss_bytes();
    put("start.rss", rss0);
    put_stats("start", stats_now());
    Table t(4u << 20);
    if (!allocate_set(t, bytes, small_pct, medium_pct, rng, 1u << 24)) return 1;
    put("peak.rss", rss_bytes());
    free_set(t, rng);
    put("freed.rss", rss_bytes());
    put_stats("freed", stats_now());
    int r1 = malloc_trim(0);
    put("trim1.result", uint64_t(r1));
    put("trim1.rss", rss_bytes());
    put_stats("trim1", stats_now());
    int r2 = malloc_trim(0);
    put("trim2.result", uint64_t(r2));
    put_stats("trim2", stats_now());
    // The heap still works after a trim: pages given back come back zeroed
    // (calloc) or writable (malloc).
    Table u(1u << 16);
    if (!allocate_set(u, 16 * kMiB, 60, 40, rng, 1u << 28)) return 1;
    for (int i = 0; i < 2000; ++i) {
        size_t n = 16 + rng.below(8192);
        auto* p = static_cast<unsigned char*>(kCallocSites[i % kSites](n));
        if (btm_test::first_nonzero(p, n) != n) {
            say(2, "error: calloc(%zu) after malloc_trim returned non-zero bytes\n", n);
            g_corrupt.fetch_add(1);
        }
        free(p);
    }
    free_set(u, rng);
    return g_corrupt ? 2 : 0;
}

// ------------------------------------------------------------------ stress

struct StressConfig {
    unsigned threads;
    uint64_t peak_bytes;      // all threads together, at the top of a swing
    unsigned rounds;
    unsigned survivor_pct;    // of each thread's objects, kept through a shrink
    unsigned pause_ms;        // after a shrink, before the survivors are verified
    bool trimmer;             // one more thread calls malloc_trim(0) all along
    uint64_t seed;
};

// Sizes for the stress: mostly slab sizes (where pages are released around
// live objects), a few large blocks.
size_t stress_size(Rng& rng) {
    unsigned r = unsigned(rng.below(1000));
    if (r < 800) return 16 + rng.below(1009);
    if (r < 995) return 1025 + rng.below(15 * 1024);
    return 128 * 1024 + rng.below(384 * 1024);
}

class Stress {
   public:
    explicit Stress(const StressConfig& c)
        : c_(c), mail_(c.threads), barrier_(c.threads) {}

    void run() {
        const struct btm_stats s0 = stats_now();
        std::atomic<bool> stop_trim{false};
        std::atomic<uint64_t> trims{0}, trims_released{0};
        std::thread trimmer;
        if (c_.trimmer)
            trimmer = std::thread([&] {
                while (!stop_trim.load(std::memory_order_relaxed)) {
                    if (malloc_trim(0)) trims_released.fetch_add(1);
                    trims.fetch_add(1);
                    sleep_ms(5);
                }
            });
        std::vector<std::thread> pool;
        uint64_t t0 = mono_ms();
        for (unsigned t = 0; t < c_.threads; ++t) pool.emplace_back([this, t] { worker(t); });
        for (auto& th : pool) th.join();
        stop_trim = true;
        if (trimmer.joinable()) trimmer.join();
        const struct btm_stats s1 = stats_now();
        put("stress.ms", mono_ms() - t0);
        put("stress.ops", ops_.load());
        put("stress.checked", checked_.load());
        put("stress.survivor_checks", survivor_checks_.load());
        put("stress.pauses_with_release", pauses_with_release_.load());
        put("stress.pauses", pauses_.load());
        put("stress.released_bytes", released(s1) - released(s0));
        put("stress.released_async", s1.released_bytes_async - s0.released_bytes_async);
        put("stress.peak_rss", peak_rss_.load());
        put("stress.trims", trims.load());
        put("stress.trims_released", trims_released.load());
        put("stress.corrupt", g_corrupt.load());
    }

   private:
    struct Mailbox {
        std::mutex m;
        std::vector<Obj> v;
    };

    Obj make(Rng& rng, unsigned self, uint64_t& seq) {
        size_t n = stress_size(rng);
        uint64_t tag = (uint64_t(self) << 48) | seq++;
        unsigned char* p;
        int site = int(rng.below(kSites));
        if (rng.chance(10)) {
            p = static_cast<unsigned char*>(kCallocSites[site](n));
            if (p) {
                size_t nz = btm_test::first_nonzero(p, n);
                if (nz != n && g_corrupt.fetch_add(1) < 8)
                    say(2, "error: calloc(%zu) = %p: byte %zu is 0x%02x, not zero\n", n, static_cast<void*>(p), nz,
                        p[nz]);
            }
        } else {
            p = static_cast<unsigned char*>(kMallocSites[site](n));
        }
        if (!p) {
            say(2, "error: allocation of %zu bytes failed\n", n);
            g_corrupt.fetch_add(1);
            _exit(2);
        }
        btm_test::fill_pattern(p, n, tag);
        ops_.fetch_add(1, std::memory_order_relaxed);
        return Obj{p, n, tag};
    }

    void drop(Obj& o) {
        verify_and_free(o, "before free");
        checked_.fetch_add(1, std::memory_order_relaxed);
    }

    void drain_mail(unsigned self) {
        std::vector<Obj> got;
        {
            std::lock_guard<std::mutex> lock(mail_[self].m);
            got.swap(mail_[self].v);
        }
        for (Obj& o : got) drop(o);
    }

    void worker(unsigned self) {
        Rng rng(c_.seed * 1000 + self);
        uint64_t seq = 0;
        std::vector<Obj> live;
        uint64_t live_bytes = 0;
        const uint64_t share = c_.peak_bytes / c_.threads;
        auto remove_at = [&](size_t i) {
            live_bytes -= live[i].size;
            live[i] = live.back();
            live.pop_back();
        };
        for (unsigned round = 0; round < c_.rounds; ++round) {
            // Grow to this thread's share, with holes: some objects die young,
            // some are reallocated.
            while (live_bytes < share) {
                unsigned r = unsigned(rng.below(100));
                if (r < 12 && !live.empty()) {
                    size_t i = rng.below(live.size());
                    drop(live[i]);
                    remove_at(i);
                } else if (r < 15 && !live.empty()) {
                    size_t i = rng.below(live.size());
                    Obj& o = live[i];
                    size_t n = stress_size(rng);
                    verify(o, "before realloc");
                    auto* q = static_cast<unsigned char*>(realloc(o.p, n));
                    if (!q) {
                        say(2, "error: realloc to %zu failed\n", n);
                        _exit(2);
                    }
                    size_t keep = std::min(n, o.size);
                    size_t off = btm_test::check_pattern(q, keep, o.tag);
                    if (off != keep) report_corrupt(Obj{q, keep, o.tag}, off, "after realloc");
                    live_bytes = live_bytes - o.size + n;
                    o = Obj{q, n, (uint64_t(self) << 48) | seq++};
                    btm_test::fill_pattern(q, n, o.tag);
                } else {
                    live.push_back(make(rng, self, seq));
                    live_bytes += live.back().size;
                }
                if ((seq & 1023) == 0) drain_mail(self);
            }
            sample_rss();
            barrier_.arrive_and_wait();
            // Shrink: keep survivor_pct of the objects; a quarter of the rest is
            // freed by the next thread (remote frees).
            unsigned next = (self + 1) % c_.threads;
            std::vector<Obj> outgoing;
            for (size_t i = live.size(); i-- > 0;) {
                if (rng.chance(c_.survivor_pct)) continue;
                if (c_.threads > 1 && rng.chance(25)) {
                    outgoing.push_back(live[i]);
                } else {
                    drop(live[i]);
                }
                remove_at(i);
            }
            {
                std::lock_guard<std::mutex> lock(mail_[next].m);
                mail_[next].v.insert(mail_[next].v.end(), outgoing.begin(), outgoing.end());
            }
            barrier_.arrive_and_wait();
            drain_mail(self);
            if (self == 0) before_pause_ = released(stats_now());
            barrier_.arrive_and_wait();
            // Pause: the pages around the survivors age and go back.
            if (c_.pause_ms) sleep_ms(c_.pause_ms);
            barrier_.arrive_and_wait();
            if (self == 0) {
                pauses_.fetch_add(1);
                if (released(stats_now()) > before_pause_) pauses_with_release_.fetch_add(1);
            }
            // Every survivor, byte for byte.
            for (const Obj& o : live) verify(o, "survivor after a release pause");
            survivor_checks_.fetch_add(live.size(), std::memory_order_relaxed);
        }
        for (Obj& o : live) drop(o);
        live.clear();
        barrier_.arrive_and_wait();
        drain_mail(self);
    }

    void sample_rss() {
        uint64_t r = rss_bytes();
        uint64_t cur = peak_rss_.load();
        while (r > cur && !peak_rss_.compare_exchange_weak(cur, r)) {
        }
    }

    StressConfig c_;
    std::vector<Mailbox> mail_;
    std::barrier<> barrier_;
    uint64_t before_pause_ = 0;
    std::atomic<uint64_t> ops_{0}, checked_{0}, survivor_checks_{0}, pauses_{0}, pauses_with_release_{0};
    std::atomic<uint64_t> peak_rss_{0};
};

StressConfig stress_config(unsigned rounds_default) {
    StressConfig c;
    c.threads = unsigned(opt("threads", 4));
    c.peak_bytes = opt("peak_mb", 100) * kMiB;
    c.rounds = unsigned(opt("rounds", rounds_default)) * btm_test::stress_scale();
    c.survivor_pct = unsigned(opt("survivor_pct", 10));
    c.pause_ms = unsigned(opt("pause_ms", 400));
    c.trimmer = opt("trimmer", 0) != 0;
    c.seed = opt("seed", 3);
    return c;
}

int scenario_stress() {
    warm_up();
    uint64_t rss0 = rss_bytes();
    put("start.rss", rss0);
    Stress s(stress_config(10));
    s.run();
    put_stats("end", stats_now());
    put("end.rss", rss_bytes());
    return g_corrupt ? 2 : 0;
}

// ------------------------------------------------------------------ seccomp

#if defined(__x86_64__)
#define RECLAIM_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define RECLAIM_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define RECLAIM_AUDIT_ARCH AUDIT_ARCH_RISCV64
#else
#error "reclaim_child: add this architecture's AUDIT_ARCH_* for the seccomp filter"
#endif

// The action the filter takes on io_uring_setup, io_uring_enter and
// io_uring_register (everything else is allowed): EPERM as under a container
// runtime's default profile, or kill as under systemd's
// SystemCallFilter=@system-service without SystemCallErrorNumber=.
uint32_t filter_action(const std::string& name) {
    if (name == "eperm") return SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
    if (name == "enosys") return SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
    if (name == "kill") return SECCOMP_RET_KILL_THREAD;
    if (name == "kill_process") return SECCOMP_RET_KILL_PROCESS;
    if (name == "trap") return SECCOMP_RET_TRAP;
    say(2, "error: unknown action=%s\n", name.c_str());
    _exit(1);
}

// `tsync`: the filter reaches every thread of the process, the reclaim
// thread included, not only the caller and the threads it starts later.
void install_io_uring_filter(uint32_t action, bool tsync) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RECLAIM_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail_setup("prctl(PR_SET_NO_NEW_PRIVS)");
    unsigned flags = tsync ? SECCOMP_FILTER_FLAG_TSYNC : 0;
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) != 0) fail_setup("seccomp(SET_MODE_FILTER)");
}

// The "Seccomp:" field of /proc/self/status (2 = filter), read without malloc.
int seccomp_mode() {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    const char* s = strstr(buf, "\nSeccomp:");
    if (!s) return -1;
    s += 9;
    while (*s == ' ' || *s == '\t') ++s;
    return *s - '0';
}

int scenario_seccomp(int threads_before, uint64_t thread_before, int setup_errno) {
    put_signed("before_filter.tasks", threads_before);
    put("before_filter.reclaim_thread", thread_before);
    bool late = opt_str("when", "start") == "late";
    warm_up();
    uint64_t rss0 = rss_bytes();
    put("start.rss", rss0);
    if (late) {
        Stress first(stress_config(2));
        first.run();
        put_stats("unfiltered", stats_now());
        install_io_uring_filter(filter_action(opt_str("action", "eperm")), true);
    }
    put_signed("filter.seccomp_mode", seccomp_mode());
    put_signed("filter.io_uring_setup_errno", setup_errno);
    Stress s(stress_config(4));
    s.run();
    put_stats("stressed", stats_now());
    put("stressed.rss", rss_bytes());
    Rng rng(5);
    settle("settle", rss0, opt("slack_mib", 32) * kMiB, opt("dirty_kib", 1024) * 1024, opt("timeout_ms", 5000),
           opt_str("drive", "none"), rng);
    return g_corrupt ? 2 : 0;
}

// ------------------------------------------------------------------ fork

// What a forked child does; its exit status says what failed (and stderr why).
int fork_child_fail(int code, unsigned index, const char* why) {
    say(2, "error: forked child %u: %s\n", index, why);
    return code;
}

int fork_child_work(Table& inherited, bool wait_for_own_thread, unsigned index) {
    alarm(60);
    // Only this thread was copied: no reclaim thread here, and the counters
    // must not claim one.
    int tasks = task_count();
    if (tasks != 1) return fork_child_fail(15, index, "more than one thread right after fork");
    if (stats_now().reclaim_thread != 0) return fork_child_fail(16, index, "reclaim_thread is 1 right after fork");
    for (size_t i = 0; i < inherited.size(); ++i)
        if (!verify(inherited[i], "inherited object in a forked child"))
            return fork_child_fail(10, index, "an inherited object is corrupt");
    Rng rng(1000 + index);
    // Free half of what the parent left, allocate anew, verify, free.
    for (size_t i = 0; i < inherited.size(); i += 2) free(inherited[i].p);
    Table mine(1u << 16);
    if (!allocate_set(mine, 6 * kMiB, 70, 30, rng, uint64_t(index) << 32))
        return fork_child_fail(11, index, "malloc failed");
    for (size_t i = 0; i < mine.size(); ++i)
        if (!verify(mine[i], "forked child's own object"))
            return fork_child_fail(12, index, "the child's own object is corrupt");
    const struct btm_stats before = stats_now();
    free_set(mine, rng);
    if (g_corrupt) return fork_child_fail(12, index, "the child's own object is corrupt at free");
    if (wait_for_own_thread) {
        // The parent's reclaim thread does not exist here; with > 1 MiB to
        // give back the child starts its own, which must release pages.
        uint64_t deadline = mono_ms() + 20000;
        for (;;) {
            // Slow paths are where the thread gets started.
            drive_step("burst", rng);
            struct btm_stats s = stats_now();
            if (s.reclaim_thread == 1 && task_count() >= 2 && released(s) > released(before)) break;
            if (mono_ms() > deadline)
                return fork_child_fail(13, index, "no reclaim thread of its own released pages within 20 s");
            sleep_ms(20);
        }
    }
    malloc_trim(0);
    // Still works after the trim.
    void* p = malloc(3 * kMiB);
    if (!p) return fork_child_fail(14, index, "malloc after malloc_trim failed");
    memset(p, 0x11, 3 * kMiB);
    free(p);
    for (size_t i = 1; i < inherited.size(); i += 2)
        if (!verify(inherited[i], "inherited object in a forked child, after malloc_trim"))
            return fork_child_fail(10, index, "an inherited object is corrupt after malloc_trim");
    return 0;
}

int scenario_fork() {
    const unsigned forks = unsigned(opt("forks", 50));
    const uint64_t swing = opt("swing_mb", 24) * kMiB;
    warm_up();
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> swings{0};
    // Keeps the reclaim thread busy: every swing frees ~swing bytes.
    std::thread swinger([&] {
        Rng rng(77);
        Table t(1u << 20);
        uint64_t k = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            if (!allocate_set(t, swing, 60, 40, rng, (uint64_t(1) << 40) + (k << 24))) _exit(1);
            free_set(t, rng);
            swings.fetch_add(1);
            ++k;
        }
    });
    // Wait until the background thread runs and has released something.
    uint64_t deadline = mono_ms() + 10000;
    while (!(stats_now().reclaim_thread == 1 && released(stats_now()) > 0) && mono_ms() < deadline) sleep_ms(10);
    const struct btm_stats s0 = stats_now();
    put_stats("before_forks", s0);
    Rng rng(8);
    Table inherited(1u << 14);
    unsigned failures = 0, hung = 0, killed = 0;
    uint64_t worst_ms = 0;
    for (unsigned i = 0; i < forks; ++i) {
        inherited.clear();
        if (!allocate_set(inherited, 1 * kMiB, 90, 10, rng, (uint64_t(2) << 40) + (uint64_t(i) << 20))) return 1;
        uint64_t t0 = mono_ms();
        pid_t pid = fork();
        if (pid < 0) fail_setup("fork");
        if (pid == 0) _exit(fork_child_work(inherited, i % 10 == 9, i));
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) fail_setup("waitpid");
        worst_ms = std::max(worst_ms, mono_ms() - t0);
        if (WIFSIGNALED(status)) {
            ++killed;
            if (WTERMSIG(status) == SIGALRM) ++hung;
            say(2, "error: fork %u: child killed by signal %d%s\n", i, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (hung for 60 s)" : "");
        } else if (WEXITSTATUS(status) != 0) {
            ++failures;
            say(2, "error: fork %u: child exited with %d\n", i, WEXITSTATUS(status));
        }
        for (size_t k = 0; k < inherited.size(); ++k) verify_and_free(inherited[k], "parent's object after a fork");
    }
    const struct btm_stats s1 = stats_now();
    stop = true;
    swinger.join();
    put("forks", forks);
    put("fork.failures", failures);
    put("fork.killed", killed);
    put("fork.hung", hung);
    put("fork.worst_ms", worst_ms);
    put("fork.swings", swings.load());
    put("fork.released_during", released(s1) - released(s0));
    put_stats("after_forks", s1);
    put("corrupt", g_corrupt.load());
    return g_corrupt ? 2 : 0;
}

// ------------------------------------------------------------------ lazy

// A few KB, a short-lived process's worth, then longer than an aging tick:
// nothing here asks for a thread.  Prints small.*.
void allocate_a_little() {
    void* keep[64];
    for (int i = 0; i < 64; ++i) {
        keep[i] = kMallocSites[i % kSites](16 + 8 * i);
        memset(keep[i], 0x42, 16 + 8 * i);
    }
    void* page = malloc(4096);
    memset(page, 0x43, 4096);
    for (int i = 0; i < 64; i += 2) free(keep[i]);
    free(page);
    sleep_ms(unsigned(opt("wait_ms", 600)));
    put_signed("small.tasks", task_count());
    put_stats("small", stats_now());
    for (int i = 1; i < 64; i += 2) free(keep[i]);
}

// Then a process with memory to give back, until its thread has released
// some (or timeout_ms).  Prints big.*; false if the allocation failed.
bool allocate_and_give_back() {
    Rng rng(9);
    Table t(1u << 18);
    if (!allocate_set(t, 16 * kMiB, 80, 20, rng, 1u << 20)) return false;
    free_set(t, rng);
    uint64_t deadline = mono_ms() + opt("timeout_ms", 5000);
    while (mono_ms() < deadline) {
        struct btm_stats s = stats_now();
        // The freeing thread itself may release what is far over budget; the
        // rest goes back by the thread's aging ticks (through the ring if any).
        bool by_thread = s.reclaim_uring ? s.released_bytes_async > 0 : released(s) > 0;
        if (s.reclaim_thread == 1 && task_count() >= 2 && by_thread) break;
        sleep_ms(10);
    }
    put_signed("big.tasks", task_count());
    put_stats("big", stats_now());
    return true;
}

int scenario_lazy() {
    allocate_a_little();
    if (!allocate_and_give_back()) return 1;
    return g_corrupt ? 2 : 0;
}

// RELIABILITY.md row 12: unshare(CLONE_NEWUSER) refuses a process with more
// than one thread (EINVAL), which is how a helper thread started too early
// breaks sandboxes (bubblewrap, unprivileged containers).  Tried after a
// little allocation, and again once the background thread runs.
int scenario_unshare() {
    allocate_a_little();
    put_signed("small.unshare_errno", unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
    if (!allocate_and_give_back()) return 1;
    put_signed("big.unshare_errno", unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
    return g_corrupt ? 2 : 0;
}

// ---------------------------------------------------------------- prefault

// A heap that gives its memory back, waits until it is gone, then grows again
// in steps: the background thread must fault pages in ahead of the growth
// (prefault_bytes grows) without touching a live object (every object is
// verified before it is freed).
int scenario_prefault() {
    Rng rng(21);
    Table t(1u << 18);
    if (!allocate_set(t, 24 * kMiB, 90, 10, rng, 1)) return 1;
    free_set(t, rng);
    uint64_t deadline = mono_ms() + opt("timeout_ms", 5000);
    while (mono_ms() < deadline && !(stats_now().reclaim_thread == 1 && stats_now().dirty_bytes < kMiB))
        sleep_ms(20);
    struct btm_stats before = stats_now();
    put_stats("before", before);
    for (int step = 0; step < 40 && !g_corrupt; ++step) {
        if (!allocate_set(t, kMiB / 2, 90, 10, rng, 1000000u * uint64_t(step + 2))) return 1;
        sleep_ms(15);
    }
    struct btm_stats grown = stats_now();
    put_stats("grown", grown);
    put("grown.prefault_bytes", grown.prefault_bytes);
    put("before.prefault_bytes", before.prefault_bytes);
    free_set(t, rng);
    return g_corrupt ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    // First of all, before this program's first malloc: the filter must be in
    // place before the allocator could try io_uring_setup (its background
    // thread starts lazily, never before main).
    int threads_before = 0, setup_errno = 0;
    uint64_t thread_before = 0;
    g_argc = argc;
    g_argv = argv;
    bool seccomp = argc >= 2 && strcmp(argv[1], "seccomp") == 0;
    if (seccomp) {
        threads_before = task_count();
        thread_before = stats_now().reclaim_thread;
        std::string action = opt_str("action", "eperm");
        uint32_t ret = filter_action(action);
        if (opt_str("when", "start") != "late") install_io_uring_filter(ret, false);
        // The filter works: io_uring_setup(1, &params) fails with the errno
        // chosen (asked only of a filter that fails calls, not kills).
        if (opt_str("when", "start") != "late" && (action == "eperm" || action == "enosys")) {
            unsigned char params[120] = {};
            errno = 0;
            long r = syscall(__NR_io_uring_setup, 1, params);
            setup_errno = r < 0 ? errno : 0;
            if (r >= 0) close(int(r));
        }
    }
    if (argc < 2) {
        say(2, "usage: %s rss|trim|stress|seccomp|fork|lazy|prefault [key=value ...]\n", argv[0]);
        return 1;
    }
    std::string s = argv[1];
    int rc;
    if (s == "rss") rc = scenario_rss();
    else if (s == "trim") rc = scenario_trim();
    else if (s == "stress") rc = scenario_stress();
    else if (seccomp) rc = scenario_seccomp(threads_before, thread_before, setup_errno);
    else if (s == "fork") rc = scenario_fork();
    else if (s == "lazy") rc = scenario_lazy();
    else if (s == "unshare") rc = scenario_unshare();
    else if (s == "prefault") rc = scenario_prefault();
    else {
        say(2, "unknown scenario %s\n", argv[1]);
        return 1;
    }
    put("exit", uint64_t(rc));
    return rc;
}
