// Mesh compaction (issue 19): btm_compact() merges sparse slabs of one size
// class by remapping, and every object, address and check survives it.
// Run with BTM_MESH=on, each test in a process of its own (CMakeLists.txt):
// meshing changes the whole heap.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <pthread.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "test_support.h"

using namespace btm_test;

namespace {

constexpr size_t kSize = 64;

uint64_t rss_bytes() {
    struct btm_stats s {};
    s.version = BTM_STATS_VERSION;
    EXPECT_EQ(btm_stats(&s), 0);
    return s.resident_bytes;
}

// A heap of `n` 64-byte objects of which a random 90% were freed: the
// survivors, each filled with the pattern of its index.  The pointer arrays
// are mappings of their own, outside the heap being measured.
struct Survivors {
    void** ptr = nullptr;
    size_t n = 0;
    size_t cap = 0;
    Survivors() = default;
    Survivors(const Survivors&) = delete;
    Survivors& operator=(const Survivors&) = delete;
    ~Survivors() {
        if (ptr) munmap(ptr, cap * sizeof(void*));
    }
};

void* map_array(size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    return p;
}

// Every object of the tests comes from this one call site, so that they
// share one partition's slabs (and the churn below meets meshed slabs).
__attribute__((noinline)) void* alloc_object() {
    void* p = malloc(opaque(kSize));
    escape(p);
    return p;
}

void make_sparse_heap(size_t n, Survivors* out) {
    auto** all = static_cast<void**>(map_array(n * sizeof(void*)));
    for (size_t i = 0; i < n; ++i) {
        all[i] = alloc_object();
        ASSERT_NE(all[i], nullptr);
        fill_pattern(all[i], kSize, i);
    }
    out->cap = n / 5;
    out->ptr = static_cast<void**>(map_array(out->cap * sizeof(void*)));
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < n; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (x % 10 == 0 && out->n < out->cap) {
            out->ptr[out->n++] = all[i];
            // The tag moves with the object: index in the survivors' array.
            fill_pattern(all[i], kSize, out->n - 1);
        } else {
            free(all[i]);
        }
    }
    munmap(all, n * sizeof(void*));
}

void expect_intact(const Survivors& s, uint64_t tag_base = 0) {
    size_t bad = 0;
    for (size_t i = 0; i < s.n; ++i) bad += check_pattern(s.ptr[i], kSize, tag_base + i) != kSize;
    EXPECT_EQ(bad, 0u) << "of " << s.n << " survivors";
}

// Bit 56 of a /proc/self/pagemap entry: the page is mapped exactly once.  A
// meshed physical page is mapped at two addresses (readable without
// privilege, unlike the frame number).
bool mapped_once(const void* p) {
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) return true;
    uint64_t e = 0;
    off_t at = off_t(reinterpret_cast<uintptr_t>(p) / page_size() * 8);
    bool ok = pread(fd, &e, 8, at) == 8;
    close(fd);
    return !ok || (e >> 56 & 1);
}

size_t count_meshed(const Survivors& s) {
    size_t n = 0;
    for (size_t i = 0; i < s.n; ++i) n += !mapped_once(s.ptr[i]);
    return n;
}

// A sparse heap of 200,000 objects, compacted: some survivors now share
// physical pages.
void make_meshed_heap(Survivors* s) {
    make_sparse_heap(200000, s);
    ASSERT_NO_FATAL_FAILURE();
    ASSERT_GT(btm_compact(), 0u);
    ASSERT_GT(count_meshed(*s), 0u);
}

void* wait_for_pipe(void* fd) {
    char c;
    return reinterpret_cast<void*>(read(int(reinterpret_cast<intptr_t>(fd)), &c, 1));
}

// btm_compact() with a second (sleeping) thread: meshes with the barrier,
// or refuses.  False if the thread could not be made.
bool compact_beside_a_thread() {
    int fds[2];
    pthread_t t;
    if (pipe(fds) != 0 || pthread_create(&t, nullptr, wait_for_pipe, reinterpret_cast<void*>(intptr_t(fds[0]))) != 0)
        return false;
    btm_compact();
    bool ok = write(fds[1], "x", 1) == 1;
    pthread_join(t, nullptr);
    close(fds[0]);
    close(fds[1]);
    return ok;
}

void free_all(Survivors* s) {
    for (size_t i = 0; i < s->n; ++i) free(s->ptr[i]);
    s->n = 0;
}

// The case: 1 M objects of 64 B, a random 90% freed, stayed at
// 72.6 MB of RSS after btm_compact() (11x the live bytes).
TEST(Mesh, Compact64ByteRandom90) {
    malloc_trim(0);
    uint64_t base = rss_bytes();
    Survivors s;
    make_sparse_heap(1000000, &s);
    ASSERT_NO_FATAL_FAILURE();
    malloc_trim(0);
    uint64_t before = rss_bytes() - base;
    size_t released = btm_compact();
    malloc_trim(0);
    uint64_t after = rss_bytes() - base;
    double live = double(s.n * kSize);
    printf("live %.1f MB, RSS over the start: %.1f MB before, %.1f MB after btm_compact (%.2fx), %.1f MB released\n",
           live / 1e6, before / 1e6, after / 1e6, after / live, released / 1e6);
    EXPECT_GT(released, 0u);
    EXPECT_LE(double(after), 3.0 * live);
    expect_intact(s);
    free_all(&s);
}

// Every survivor, at whichever of its two addresses it is, answers
// malloc_usable_size, reallocs in place and frees; the heap then serves
// new objects from the merged slabs without overlap.
TEST(Mesh, BothAddressesWork) {
    Survivors s;
    ASSERT_NO_FATAL_FAILURE(make_meshed_heap(&s));
    for (size_t i = 0; i < s.n; ++i) {
        ASSERT_EQ(malloc_usable_size(s.ptr[i]), kSize);
        ASSERT_EQ(realloc(s.ptr[i], opaque(size_t(48))), s.ptr[i]) << i;
    }
    expect_intact(s);
    // New objects land in the merged slabs' free slots: none may overlap a
    // survivor (fill them, then check the survivors again).
    Survivors fresh;
    fresh.cap = 200000;  // enough to reuse every page the heap had
    fresh.ptr = static_cast<void**>(map_array(fresh.cap * sizeof(void*)));
    for (size_t i = 0; i < s.n * 4; ++i) {
        fresh.ptr[fresh.n++] = malloc(opaque(kSize));
        fill_pattern(fresh.ptr[i], kSize, ~uint64_t(i));
    }
    expect_intact(s);
    for (size_t i = 0; i < fresh.n; ++i) ASSERT_EQ(check_pattern(fresh.ptr[i], kSize, ~uint64_t(i)), kSize) << i;
    const size_t n = fresh.cap;
    free_all(&fresh);
    free_all(&s);
    // Everything meshed is free again: the merged slabs emptied, each source
    // got its own (zeroed) pages back, and trim released them.  Reused, no
    // two addresses may still share memory.
    malloc_trim(0);
    for (size_t i = 0; i < n; ++i) {
        fresh.ptr[fresh.n++] = malloc(opaque(kSize));
        fill_pattern(fresh.ptr[i], kSize, i);
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += check_pattern(fresh.ptr[i], kSize, i) != kSize;
    EXPECT_EQ(bad, 0u);
    free_all(&fresh);
}

// A second free of an object on a meshed page is caught, through either
// address (the free mark lives in the one physical slot).
TEST(Mesh, DoubleFreeAfterMeshDetected) {
    if (!kHardening) GTEST_SKIP() << "SKIPPED: built without BTM_HARDENING";
    Survivors s;
    ASSERT_NO_FATAL_FAILURE(make_meshed_heap(&s));
    unsigned tried = 0;
    for (size_t i = 0; i < s.n && tried < 4; ++i) {
        if (mapped_once(s.ptr[i])) continue;
        ++tried;
        void* p = s.ptr[i];
        EXPECT_DEATH(
            {
                no_core_dump();
                free(p);
                free(opaque(p));
            },
            "double free");
    }
    EXPECT_GT(tried, 0u);
    free_all(&s);
}

// After fork() parent and child have heaps of their own: each writes every
// survivor, neither sees the other's writes, both free everything.
TEST(Mesh, ForkGivesChildPrivateHeap) {
    Survivors s;
    ASSERT_NO_FATAL_FAILURE(make_meshed_heap(&s));
    int to_child[2], to_parent[2];
    ASSERT_EQ(pipe(to_child), 0);
    ASSERT_EQ(pipe(to_parent), 0);
    const uint64_t kParentTag = 1ull << 40, kChildTag = 2ull << 40;
    ASSERT_TRUE(compact_beside_a_thread());  // the parent's barrier, if any, is probed
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    char c = 0;
    if (pid == 0) {
        // Half the survivors die in the child and it compacts again, beside
        // a thread of its own where the barrier is (the parent's userfaultfd
        // must not be the one used: it acts on the parent's memory).
        for (size_t i = 0; i < s.n; i += 2) {
            free(s.ptr[i]);
            s.ptr[i] = alloc_object();
        }
        if (!compact_beside_a_thread()) _exit(6);
        for (size_t i = 0; i < s.n; ++i) fill_pattern(s.ptr[i], kSize, kChildTag + i);
        if (write(to_parent[1], "c", 1) != 1 || read(to_child[0], &c, 1) != 1) _exit(3);
        for (size_t i = 0; i < s.n; ++i)
            if (check_pattern(s.ptr[i], kSize, kChildTag + i) != kSize) _exit(4);
        for (size_t i = 0; i < s.n; ++i) free(s.ptr[i]);
        void* p = malloc(kSize);
        _exit(p ? 0 : 5);
    }
    for (size_t i = 0; i < s.n; ++i) fill_pattern(s.ptr[i], kSize, kParentTag + i);
    ASSERT_EQ(read(to_parent[0], &c, 1), 1);
    ASSERT_EQ(write(to_child[1], "p", 1), 1);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    expect_intact(s, kParentTag);
    free_all(&s);
    for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) close(fd);
}

// Cold tiering pages meshed slabs out; they come back intact.
TEST(Mesh, PageoutAfterMesh) {
    Survivors s;
    ASSERT_NO_FATAL_FAILURE(make_meshed_heap(&s));
    EXPECT_GT(btm_pageout_cold(0), 0u);
    expect_intact(s);
    free_all(&s);
}

// Whether this process may use userfaultfd write-protection of shared
// memory with kernel-mode faults (no UFFD_USER_MODE_ONLY): btmalloc's write
// barrier.
bool barrier_available() {
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC);
    if (fd < 0) return false;
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    bool ok = ioctl(int(fd), UFFDIO_API, &api) == 0;
    close(int(fd));
    return ok;
}

// Takes CAP_SYS_PTRACE out of the effective set: then, with
// vm.unprivileged_userfaultfd = 0, only user-mode-only userfaultfd is left.
bool drop_ptrace() {
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) return false;
    d[0].effective &= ~(1u << CAP_SYS_PTRACE);
    return syscall(SYS_capset, &h, d) == 0;
}

// Without the write barrier, meshing is safe only while no other thread of
// the program runs: with one, btm_compact() meshes nothing and says why.
TEST(Mesh, RefusedWithoutBarrier) {
    int fd = open("/proc/sys/vm/unprivileged_userfaultfd", O_RDONLY);
    char v = '0';
    if (fd >= 0 && read(fd, &v, 1) != 1) v = '0';
    if (fd >= 0) close(fd);
    if (v != '0') GTEST_SKIP() << "SKIPPED: vm.unprivileged_userfaultfd is on: the barrier cannot be taken away";
    ASSERT_TRUE(drop_ptrace());
    ASSERT_FALSE(barrier_available());
    Survivors s;
    make_sparse_heap(200000, &s);
    ASSERT_NO_FATAL_FAILURE();
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, nullptr, wait_for_pipe, reinterpret_cast<void*>(intptr_t(fds[0]))), 0);
    char path[] = "/tmp/btm_mesh_stderrXXXXXX";
    int log = mkstemp(path);
    ASSERT_GE(log, 0);
    unlink(path);
    int saved = dup(2);
    dup2(log, 2);
    errno = 0;
    size_t released = btm_compact();
    int err = errno;
    dup2(saved, 2);
    close(saved);
    ASSERT_EQ(write(fds[1], "x", 1), 1);
    pthread_join(t, nullptr);
    EXPECT_EQ(released, 0u);
    EXPECT_EQ(err, EBUSY);
    EXPECT_EQ(count_meshed(s), 0u);
    char buf[512] = {};
    EXPECT_GT(pread(log, buf, sizeof buf - 1, 0), 0);
    EXPECT_NE(strstr(buf, "btm_compact: not meshing: 1 other thread(s) run and no write barrier"), nullptr) << buf;
    close(log);
    for (int f : fds) close(f);
    expect_intact(s);
    free_all(&s);
}

// With the barrier, threads that write their objects (and one that frees
// its objects) all through a compaction lose nothing.  Each writer adds 1
// to the first word of each of its objects, pass after pass, and counts on
// its side: a write lost between a source's copy and its remap would leave
// the object's count behind for good.
struct Writers {
    Survivors* s;
    uint64_t* count;  // the writers' own tally, per object
    std::atomic<bool> stop{false};
    std::atomic<int> started{0};
};

void* write_loop(Writers* w, int id) {
    for (bool first = true; !w->stop.load(); first = false) {
        for (size_t i = size_t(id); i < w->s->n / 4 * 3; i += 2) {
            auto* c = static_cast<volatile uint64_t*>(w->s->ptr[i]);
            *c = *c + 1;
            ++w->count[i];
        }
        if (first) w->started.fetch_add(1);
    }
    return nullptr;
}

TEST(Mesh, WritersKeepTheirWrites) {
    if (!barrier_available()) GTEST_SKIP() << "SKIPPED: no userfaultfd write-protection without UFFD_USER_MODE_ONLY";
    Survivors s;
    make_sparse_heap(200000, &s);
    ASSERT_NO_FATAL_FAILURE();
    Writers w;
    w.s = &s;
    w.count = static_cast<uint64_t*>(map_array(s.n * sizeof(uint64_t)));
    for (size_t i = 0; i < s.n; ++i) w.count[i] = pattern_word(i, 0);
    pthread_t t[3];
    ASSERT_EQ(pthread_create(&t[0], nullptr, [](void* a) { return write_loop(static_cast<Writers*>(a), 0); }, &w), 0);
    ASSERT_EQ(pthread_create(&t[1], nullptr, [](void* a) { return write_loop(static_cast<Writers*>(a), 1); }, &w), 0);
    // A third thread frees the last quarter while the heap is meshed, then
    // churns objects of the same class (its bins fill from meshed slabs).
    ASSERT_EQ(pthread_create(&t[2], nullptr,
                             [](void* a) -> void* {
                                 auto* w = static_cast<Writers*>(a);
                                 w->started.fetch_add(1);
                                 for (size_t i = w->s->n / 4 * 3; i < w->s->n; ++i) free(w->s->ptr[i]);
                                 void* mine[64];
                                 uintptr_t bad = 0;
                                 for (uint64_t round = 0; !w->stop.load(); ++round) {
                                     for (size_t k = 0; k < 64; ++k) {
                                         mine[k] = alloc_object();
                                         fill_pattern(mine[k], kSize, round * 64 + k);
                                     }
                                     for (size_t k = 0; k < 64; ++k) {
                                         bad += check_pattern(mine[k], kSize, round * 64 + k) != kSize;
                                         free(mine[k]);
                                     }
                                 }
                                 return reinterpret_cast<void*>(bad);
                             },
                             &w),
              0);
    while (w.started.load() < 3) sched_yield();
    size_t released = btm_compact();
    w.stop = true;
    void* churn_bad = nullptr;
    pthread_join(t[0], nullptr);
    pthread_join(t[1], nullptr);
    pthread_join(t[2], &churn_bad);
    EXPECT_EQ(churn_bad, nullptr) << "objects of the churning thread overwritten";
    EXPECT_GT(released, 0u);
    size_t lost = 0, bad = 0;
    const size_t all = s.n;
    s.n = s.n / 4 * 3;
    for (size_t i = 0; i < s.n; ++i) {
        auto* p = static_cast<uint64_t*>(s.ptr[i]);
        lost += p[0] != w.count[i];
        for (size_t k = 1; k < kSize / 8; ++k) bad += p[k] != pattern_word(i, k);
    }
    EXPECT_EQ(lost, 0u) << "objects whose count fell behind";
    EXPECT_EQ(bad, 0u);
    munmap(w.count, all * sizeof(uint64_t));
    free_all(&s);
    // The free lists survived the cross-thread frees: new objects do not overlap.
    Survivors again;
    again.cap = 200000;
    again.ptr = static_cast<void**>(map_array(again.cap * sizeof(void*)));
    for (size_t i = 0; i < again.cap; ++i) {
        again.ptr[again.n++] = malloc(opaque(kSize));
        fill_pattern(again.ptr[i], kSize, i);
    }
    expect_intact(again);
    free_all(&again);
}

// mesh_below = 50: after a random mass free the background thread meshes
// by itself (beside the program's thread: with the barrier only).
TEST(MeshBackground, MeshesAfterMassFree) {
    if (!barrier_available()) GTEST_SKIP() << "SKIPPED: no userfaultfd write-protection without UFFD_USER_MODE_ONLY";
    Survivors s;
    make_sparse_heap(200000, &s);
    ASSERT_NO_FATAL_FAILURE();
    size_t meshed = 0;
    for (int i = 0; i < 200 && !meshed; ++i) {
        usleep(50000);
        meshed = count_meshed(s);
    }
    EXPECT_GT(meshed, 0u) << "nothing meshed within 10 s";
    expect_intact(s);
    free_all(&s);
}

// Rounds of allocating mixed sizes, freeing at random, reallocating
// (through meshed addresses too), compacting and forking: after every step
// every live object holds its own pattern, in the parent and in each child.
TEST(Mesh, RepeatedRounds) {
    constexpr size_t kSlots = 60000;
    auto** ptr = static_cast<unsigned char**>(map_array(kSlots * sizeof(void*)));
    auto* size = static_cast<size_t*>(map_array(kSlots * sizeof(size_t)));
    auto* tag = static_cast<uint64_t*>(map_array(kSlots * sizeof(uint64_t)));
    uint64_t x = 0x9E3779B97F4A7C15ull, next_tag = 1;
    auto rnd = [&x] { return x ^= x << 13, x ^= x >> 7, x ^= x << 17; };
    auto check_all = [&] {
        size_t bad = 0;
        for (size_t i = 0; i < kSlots; ++i)
            if (ptr[i]) bad += check_pattern(ptr[i], size[i], tag[i]) != size[i];
        return bad;
    };
    size_t meshed_total = 0;
    for (int round = 0; round < 12; ++round) {
        for (size_t i = 0; i < kSlots; ++i) {
            if (ptr[i] && rnd() % 4 == 0) {
                // Grow or shrink: in place or moved, from any address.
                size_t n = 16 + rnd() % 500;
                auto* q = static_cast<unsigned char*>(realloc(ptr[i], n));
                ASSERT_NE(q, nullptr);
                ASSERT_EQ(check_pattern(q, n < size[i] ? n : size[i], tag[i]), n < size[i] ? n : size[i]) << i;
                ptr[i] = q;
                size[i] = n;
                tag[i] = next_tag++;
                fill_pattern(q, n, tag[i]);
            } else if (!ptr[i]) {
                size[i] = 16 + rnd() % 500;
                ptr[i] = static_cast<unsigned char*>(malloc(size[i]));
                ASSERT_NE(ptr[i], nullptr);
                tag[i] = next_tag++;
                fill_pattern(ptr[i], size[i], tag[i]);
            }
        }
        for (size_t i = 0; i < kSlots; ++i)
            if (ptr[i] && rnd() % 10 != 0) {
                free(ptr[i]);
                ptr[i] = nullptr;
            }
        meshed_total += btm_compact();
        ASSERT_EQ(check_all(), 0u) << "round " << round;
        if (round % 4 == 3) {
            pid_t pid = fork();
            ASSERT_GE(pid, 0);
            if (pid == 0) {
                if (check_all()) _exit(3);
                for (size_t i = 0; i < kSlots; ++i) {
                    if (!ptr[i]) continue;
                    fill_pattern(ptr[i], size[i], tag[i] ^ 0xff);
                    free(ptr[i]);
                }
                _exit(0);
            }
            int status = 0;
            ASSERT_EQ(waitpid(pid, &status, 0), pid);
            ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
            ASSERT_EQ(check_all(), 0u) << "after fork, round " << round;
        }
    }
    EXPECT_GT(meshed_total, 0u);
    for (size_t i = 0; i < kSlots; ++i) free(ptr[i]);
    munmap(ptr, kSlots * sizeof(void*));
    munmap(size, kSlots * sizeof(size_t));
    munmap(tag, kSlots * sizeof(uint64_t));
}

// Under a seccomp filter mesh stays off (one verbose line) and
// btm_compact() says ENOTSUP.  The test re-runs itself under an allow-all
// filter: the library decides when the heap is made, before main.
TEST(MeshSeccomp, StaysOffUnderFilter) {
    if (getenv("BTM_TEST_UNDER_FILTER")) {
        errno = 0;
        size_t r = btm_compact();
        printf("under filter: btm_compact %zu errno %d\n", r, errno);
        EXPECT_EQ(r, 0u);
        EXPECT_EQ(errno, ENOTSUP);
        return;
    }
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
        sock_fprog prog{1, allow};
        dup2(out[1], 1);
        dup2(out[1], 2);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
            _exit(5);
        setenv("BTM_TEST_UNDER_FILTER", "1", 1);
        setenv("BTM_VERBOSE", "on", 1);
        execl("/proc/self/exe", "mesh_test", "--gtest_filter=MeshSeccomp.*", static_cast<char*>(nullptr));
        _exit(6);
    }
    close(out[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) text.append(buf, size_t(n));
    close(out[0]);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << text;
    EXPECT_NE(text.find("btmalloc: mesh = on, but a seccomp filter"), std::string::npos) << text;
    EXPECT_NE(text.find("under filter: btm_compact 0 errno"), std::string::npos) << text;
}

// mesh = off (the default): nothing is meshed and the caller is told why.
TEST(MeshOff, CompactsNothing) {
    Survivors s;
    make_sparse_heap(50000, &s);
    ASSERT_NO_FATAL_FAILURE();
    errno = 0;
    EXPECT_EQ(btm_compact(), 0u);
    EXPECT_EQ(errno, ENOTSUP);
    expect_intact(s);
    free_all(&s);
}

}  // namespace
