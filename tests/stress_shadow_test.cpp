// Shadow-map stress: many threads (8 by default, more than this machine's
// cores) run millions of random allocation operations through every entry
// point.  Each live object is recorded in a shadow entry (address, requested
// and usable size, tag, alignment, how it was allocated); its bytes, up to the
// usable size, hold a pattern derived from the tag, which names the thread and
// operation that made it.  The pattern is verified byte for byte before every
// free and across every realloc, so an allocator that hands out one slot
// twice, loses bytes, or writes into a live object is caught.  Objects travel
// to other threads to be freed or reallocated there.  At the end of each
// round all threads stop and one checks the whole live set: sorted by
// address, no two objects may overlap.
//
// BTM_STRESS_SCALE multiplies the operation count (1: 20 million operations,
// about 8 s on glibc on two cores; 10: a soak, best run as the binary itself
// since ctest stops a test after 300 s).  BTM_STRESS_THREADS and
// BTM_STRESS_SEED override the defaults.
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "test_support.h"

namespace {

using btm_test::Rng;

enum class Kind : uint8_t {
    kMalloc,
    kCalloc,
    kAlignedAlloc,
    kPosixMemalign,
    kMemalign,
    kNew,
    kNewArray,
    kNewAligned,
    kNewArrayAligned,
};

bool is_malloc_family(Kind k) { return k <= Kind::kMemalign; }

struct Obj {
    unsigned char* p;
    size_t size;
    size_t usable;
    uint64_t tag;
    size_t align;  // requested alignment; 0 = the default for the size
    Kind kind;
};

// Allocation through many distinct call sites, so a call-site partitioned
// allocator spreads the load over many partitions.  noipa keeps each
// instantiation a separate function (no inlining, no identical-code folding);
// the escape after the call keeps it from being a tail call.
template <int I>
__attribute__((noipa)) void* malloc_site(size_t n) {
    void* p = malloc(n);
    btm_test::escape(p);
    return p;
}
template <int I>
__attribute__((noipa)) void* new_site(size_t n) {
    void* p = ::operator new(n);
    btm_test::escape(p);
    return p;
}
constexpr int kSites = 48;
template <int... I>
constexpr auto make_malloc_sites(std::integer_sequence<int, I...>) {
    return std::array<void* (*)(size_t), sizeof...(I)>{&malloc_site<I>...};
}
template <int... I>
constexpr auto make_new_sites(std::integer_sequence<int, I...>) {
    return std::array<void* (*)(size_t), sizeof...(I)>{&new_site<I>...};
}
constexpr auto kMallocSites = make_malloc_sites(std::make_integer_sequence<int, kSites>{});
constexpr auto kNewSites = make_new_sites(std::make_integer_sequence<int, kSites>{});

uint64_t env_u64(const char* name, uint64_t def) {
    const char* s = getenv(name);
    if (s == nullptr || *s == '\0') return def;
    return strtoull(s, nullptr, 10);
}

class Stress {
   public:
    Stress(unsigned threads, uint64_t ops_per_thread, uint64_t seed)
        : threads_(threads),
          ops_per_thread_(ops_per_thread),
          seed_(seed),
          live_(threads),
          mailbox_(threads),
          barrier_(threads, Completion{this}) {}

    void run() {
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < threads_; ++t) pool.emplace_back([this, t] { worker(t); });
        for (auto& th : pool) th.join();
    }

    int errors() const { return errors_.load(); }
    std::string messages() {
        std::lock_guard<std::mutex> lock(message_mutex_);
        return messages_;
    }
    uint64_t objects_checked() const { return global_checked_.load(); }
    uint64_t cross_thread() const { return cross_thread_.load(); }
    uint64_t ops_done() const { return ops_done_.load(); }

   private:
    static constexpr unsigned kRounds = 8;
    static constexpr size_t kTargetLive = 1200;

    struct Mailbox {
        std::mutex mutex;
        std::vector<Obj> objects;
    };

    struct Completion {
        Stress* self;
        void operator()() noexcept { self->global_check(); }
    };

    void fail(const std::string& what) {
        if (errors_.fetch_add(1) < 20) {
            std::lock_guard<std::mutex> lock(message_mutex_);
            messages_ += what + "\n";
        }
    }
    bool too_many_errors() const { return errors_.load(std::memory_order_relaxed) > 50; }

    static std::string describe(const Obj& o) {
        char buf[200];
        snprintf(buf, sizeof buf, "object %p size %zu usable %zu align %zu kind %d tag thread %llu op %llu",
                 static_cast<void*>(o.p), o.size, o.usable, o.align, static_cast<int>(o.kind),
                 static_cast<unsigned long long>(o.tag >> 40),
                 static_cast<unsigned long long>(o.tag & ((uint64_t{1} << 40) - 1)));
        return buf;
    }

    // Mostly small sizes, log-uniform inside each tier, up to 1 MiB.
    static size_t draw_size(Rng& rng) {
        unsigned r = static_cast<unsigned>(rng.below(1000));
        if (r < 850) return rng.log_uniform(9);    // 0 .. 511
        if (r < 970) return rng.log_uniform(15);   // .. 32 KiB
        if (r < 995) return rng.log_uniform(18);   // .. 256 KiB
        return rng.log_uniform(20);                // .. 1 MiB
    }

    static size_t draw_alignment(Rng& rng, unsigned min_shift) {
        if (rng.chance(1)) return size_t{1} << (13 + rng.below(9));  // 8 KiB .. 2 MiB
        return size_t{1} << (min_shift + rng.below(13 - min_shift));  // .. 4 KiB
    }

    static size_t default_alignment(size_t size) {
        if (size == 0) return 1;
        return std::min<size_t>(16, size & (~size + 1));
    }

    bool allocate(Rng& rng, uint64_t tag, Obj& o) {
        size_t size = draw_size(rng);
        unsigned k = static_cast<unsigned>(rng.below(100));
        Kind kind = k < 30   ? Kind::kMalloc
                    : k < 40 ? Kind::kCalloc
                    : k < 50 ? Kind::kAlignedAlloc
                    : k < 58 ? Kind::kPosixMemalign
                    : k < 63 ? Kind::kMemalign
                    : k < 77 ? Kind::kNew
                    : k < 87 ? Kind::kNewArray
                    : k < 94 ? Kind::kNewAligned
                             : Kind::kNewArrayAligned;
        size_t align = 0;
        void* p = nullptr;
        switch (kind) {
            case Kind::kMalloc:
                p = kMallocSites[rng.below(kSites)](size);
                break;
            case Kind::kCalloc: {
                size_t count = rng.chance(50) ? 1 : (size % 7) + 1;
                size = count * (size / count);
                p = calloc(count, size / count);
                break;
            }
            case Kind::kAlignedAlloc:
                align = draw_alignment(rng, 4);
                p = aligned_alloc(align, size);
                break;
            case Kind::kPosixMemalign: {
                align = draw_alignment(rng, 3);
                int r = posix_memalign(&p, align, size);
                if (r != 0) {
                    fail("posix_memalign(" + std::to_string(align) + ", " + std::to_string(size) +
                         ") returned " + std::to_string(r));
                    return false;
                }
                break;
            }
            case Kind::kMemalign:
                align = draw_alignment(rng, 4);
                p = memalign(align, size);
                break;
            case Kind::kNew:
                p = kNewSites[rng.below(kSites)](size);
                break;
            case Kind::kNewArray:
                p = ::operator new[](size);
                break;
            case Kind::kNewAligned:
                align = draw_alignment(rng, 4);
                p = ::operator new(size, std::align_val_t{align});
                break;
            case Kind::kNewArrayAligned:
                align = draw_alignment(rng, 4);
                p = ::operator new[](size, std::align_val_t{align});
                break;
        }
        if (p == nullptr) {
            fail("allocation of " + std::to_string(size) + " bytes (kind " + std::to_string(static_cast<int>(kind)) +
                 ") returned NULL, errno " + std::to_string(errno));
            return false;
        }
        o = Obj{static_cast<unsigned char*>(p), size, malloc_usable_size(p), tag, align, kind};
        size_t need = align != 0 ? align : default_alignment(size);
        if (!btm_test::is_aligned(p, need)) fail("misaligned (need " + std::to_string(need) + "): " + describe(o));
        if (o.usable < size) fail("usable size below the request: " + describe(o));
        if (kind == Kind::kCalloc) {
            size_t z = btm_test::first_nonzero(p, size);
            if (z != size) fail("calloc memory not zero at offset " + std::to_string(z) + ": " + describe(o));
        }
        btm_test::fill_pattern(p, o.usable, tag);
        return true;
    }

    void verify(const Obj& o, const char* when) {
        size_t usable = malloc_usable_size(o.p);
        if (usable != o.usable)
            fail(std::string(when) + ": usable size changed to " + std::to_string(usable) + ": " + describe(o));
        size_t bad = btm_test::check_pattern(o.p, o.usable, o.tag);
        if (bad != o.usable)
            fail(std::string(when) + ": contents corrupted at offset " + std::to_string(bad) + ": " + describe(o));
    }

    void release(Rng& rng, const Obj& o) {
        verify(o, "before free");
        bool sized = rng.chance(50);
        std::align_val_t al{o.align};
        switch (o.kind) {
            case Kind::kMalloc:
            case Kind::kCalloc:
            case Kind::kAlignedAlloc:
            case Kind::kPosixMemalign:
            case Kind::kMemalign:
                free(o.p);
                break;
            case Kind::kNew:
                sized ? ::operator delete(o.p, o.size) : ::operator delete(o.p);
                break;
            case Kind::kNewArray:
                sized ? ::operator delete[](o.p, o.size) : ::operator delete[](o.p);
                break;
            case Kind::kNewAligned:
                sized ? ::operator delete(o.p, o.size, al) : ::operator delete(o.p, al);
                break;
            case Kind::kNewArrayAligned:
                sized ? ::operator delete[](o.p, o.size, al) : ::operator delete[](o.p, al);
                break;
        }
    }

    // Returns false when realloc freed the object (size 0).
    bool reallocate(Rng& rng, uint64_t tag, Obj& o) {
        verify(o, "before realloc");
        size_t new_size = rng.chance(2) ? 0 : draw_size(rng);
        void* q;
        if (new_size != 0 && rng.chance(25)) {
            size_t count = (new_size % 5) + 1;
            new_size = count * (new_size / count);
            q = reallocarray(o.p, count, new_size / count);
        } else {
            q = realloc(o.p, new_size);
        }
        if (new_size == 0) {
            if (q != nullptr) {
                fail("realloc(p, 0) returned non-NULL: " + describe(o));
                free(q);
            }
            return false;
        }
        if (q == nullptr) {
            fail("realloc to " + std::to_string(new_size) + " returned NULL: " + describe(o));
            o.size = std::min(o.size, new_size);
            return true;
        }
        Obj n{static_cast<unsigned char*>(q), new_size, malloc_usable_size(q), tag, 0, Kind::kMalloc};
        size_t keep = std::min(o.size, new_size);
        size_t bad = btm_test::check_pattern(q, keep, o.tag);
        if (bad != keep)
            fail("realloc to " + std::to_string(new_size) + " lost contents at offset " + std::to_string(bad) +
                 ": " + describe(o) + " -> " + describe(n));
        if (n.usable < new_size) fail("usable size below the request after realloc: " + describe(n));
        if (!btm_test::is_aligned(q, default_alignment(new_size))) fail("realloc result misaligned: " + describe(n));
        btm_test::fill_pattern(q, n.usable, tag);
        o = n;
        return true;
    }

    void drain_mailbox(Rng& rng, unsigned self, std::vector<Obj>& live) {
        std::vector<Obj> got;
        {
            std::lock_guard<std::mutex> lock(mailbox_[self].mutex);
            got.swap(mailbox_[self].objects);
        }
        for (const Obj& o : got) {
            if (rng.chance(50) && live.size() < kTargetLive + kTargetLive / 4) {
                verify(o, "on adoption by another thread");
                live.push_back(o);
            } else {
                release(rng, o);
            }
        }
    }

    void worker(unsigned self) {
        Rng rng(seed_ * 1000003 + self);
        std::vector<Obj>& live = live_[self];
        live.reserve(2 * kTargetLive);
        const uint64_t per_round = ops_per_thread_ / kRounds;
        uint64_t op = 0;
        uint64_t cross = 0;
        for (unsigned round = 0; round < kRounds; ++round) {
            for (uint64_t i = 0; i < per_round && !too_many_errors(); ++i, ++op) {
                uint64_t tag = (uint64_t{self} << 40) | op;
                if ((op & 31) == 0) drain_mailbox(rng, self, live);
                unsigned r = static_cast<unsigned>(rng.below(100));
                bool want_alloc = live.size() < kTargetLive / 4 || (live.size() < kTargetLive && r < 45);
                if (want_alloc || live.empty()) {
                    Obj o;
                    if (allocate(rng, tag, o)) live.push_back(o);
                    continue;
                }
                size_t idx = rng.below(live.size());
                Obj o = live[idx];
                live[idx] = live.back();
                live.pop_back();
                if (r < 75) {
                    release(rng, o);
                } else if (r < 88) {
                    if (is_malloc_family(o.kind)) {
                        if (reallocate(rng, tag, o)) live.push_back(o);
                    } else {
                        release(rng, o);
                    }
                } else if (r < 96 && threads_ > 1) {
                    unsigned to = static_cast<unsigned>((self + 1 + rng.below(threads_ - 1)) % threads_);
                    std::lock_guard<std::mutex> lock(mailbox_[to].mutex);
                    mailbox_[to].objects.push_back(o);
                    ++cross;
                } else {
                    verify(o, "spot check");
                    live.push_back(o);
                }
            }
            barrier_.arrive_and_wait();
        }
        // No thread hands objects over after the last barrier.
        drain_mailbox(rng, self, live);
        for (const Obj& o : live) release(rng, o);
        live.clear();
        cross_thread_ += cross;
        ops_done_ += op;
    }

    // Runs on one thread while all others wait at the barrier.
    void global_check() {
        std::vector<Obj> all;
        for (unsigned t = 0; t < threads_; ++t) {
            all.insert(all.end(), live_[t].begin(), live_[t].end());
            all.insert(all.end(), mailbox_[t].objects.begin(), mailbox_[t].objects.end());
        }
        std::sort(all.begin(), all.end(), [](const Obj& a, const Obj& b) { return a.p < b.p; });
        for (size_t i = 0; i < all.size(); ++i) {
            verify(all[i], "global check");
            if (i + 1 < all.size() && all[i].p + std::max<size_t>(all[i].usable, 1) > all[i + 1].p)
                fail("live objects overlap: " + describe(all[i]) + " and " + describe(all[i + 1]));
        }
        global_checked_ += all.size();
    }

    const unsigned threads_;
    const uint64_t ops_per_thread_;
    const uint64_t seed_;
    std::vector<std::vector<Obj>> live_;
    std::vector<Mailbox> mailbox_;
    std::barrier<Completion> barrier_;
    std::atomic<int> errors_{0};
    std::mutex message_mutex_;
    std::string messages_;
    std::atomic<uint64_t> global_checked_{0};
    std::atomic<uint64_t> cross_thread_{0};
    std::atomic<uint64_t> ops_done_{0};
};

TEST(StressShadow, RandomOperationsAcrossThreadsKeepEveryObjectIntact) {
    const unsigned threads = static_cast<unsigned>(env_u64("BTM_STRESS_THREADS", 8));
    const uint64_t seed = env_u64("BTM_STRESS_SEED", 1);
    const uint64_t total_ops = uint64_t{20000000} * btm_test::stress_scale();
    ASSERT_GE(threads, 1u);
    printf("threads %u, %llu operations, seed %llu (BTM_STRESS_THREADS, BTM_STRESS_SCALE, BTM_STRESS_SEED)\n",
           threads, static_cast<unsigned long long>(total_ops), static_cast<unsigned long long>(seed));
    Stress stress(threads, total_ops / threads, seed);
    stress.run();
    printf("%llu operations done, %llu objects moved between threads, %llu objects checked for overlap\n",
           static_cast<unsigned long long>(stress.ops_done()), static_cast<unsigned long long>(stress.cross_thread()),
           static_cast<unsigned long long>(stress.objects_checked()));
    EXPECT_EQ(stress.errors(), 0) << stress.messages();
    EXPECT_GT(stress.cross_thread(), 0u);
    EXPECT_GT(stress.objects_checked(), 0u);
}

}  // namespace
