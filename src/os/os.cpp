#include "os/os.h"

#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "os/syscall.h"

namespace btm::os {

namespace {
size_t g_page_size = 0;
}

size_t page_size() {
    if (!g_page_size) {
        unsigned long v = getauxval(AT_PAGESZ);
        g_page_size = v ? size_t(v) : 4096;
    }
    return g_page_size;
}

void* reserve_aligned(size_t size, size_t align, size_t below) {
    void* p = sys::mmap(nullptr, below + size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (p == MAP_FAILED) return nullptr;
    // All of it, slack included: a range inside would split the VMA in two,
    // ~3.5 us more of every process's start (an empty preloaded library
    // doing the same calls, bench_runprog over 1,000 `cat`s, 9 rounds).
    sys::madvise(p, below + size + align, MADV_NOHUGEPAGE);
    uintptr_t a = reinterpret_cast<uintptr_t>(p) + below;
    return reinterpret_cast<void*>((a + align - 1) & ~(uintptr_t(align) - 1));
}

bool commit(void* p, size_t size) { return sys::mprotect(p, size, PROT_READ | PROT_WRITE) == 0; }

void* map(size_t size) {
    void* p = sys::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    return p == MAP_FAILED ? nullptr : p;
}

void* map_aligned(size_t size, size_t align) {
    if (align <= page_size()) return map(size);
    size_t over = size + align - page_size();
    void* p = sys::mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (p == MAP_FAILED) return nullptr;
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uintptr_t aligned = (a + align - 1) & ~(uintptr_t(align) - 1);
    if (aligned > a) sys::munmap(p, aligned - a);
    uintptr_t end = a + over;
    if (end > aligned + size) sys::munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
    return reinterpret_cast<void*>(aligned);
}

void unmap(void* p, size_t size) { sys::munmap(p, size); }

bool wipe_on_fork(void* p, size_t size) {
    constexpr int kWipeOnFork = 18;  // MADV_WIPEONFORK, in case the headers predate it
    return sys::madvise(p, size, kWipeOnFork) == 0;
}

void* remap(void* p, size_t old_size, size_t new_size) {
    void* q = sys::mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? nullptr : q;
}

bool move(void* p, size_t size, void* to) { return !sys::failed(sys::mremap_fixed(p, size, to)); }

bool release(void* p, size_t size) {
    bool ok = sys::madvise(p, size, MADV_DONTNEED) == 0;
    // Released pages read back as zeros, and the heap counts on it (fresh
    // slots are handed out unwritten, calloc skips clearing them).  Where the
    // kernel refuses (locked pages: mlockall), the zeros are written instead.
    if (!ok) memset(p, 0, size);
    return ok;
}

void populate(void* p, size_t size) {
    constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE, Linux 5.14
    if (sys::madvise(p, size, kPopulateWrite) != 0) {
        // One write per 4 KiB reaches every page whatever the page size.
        for (size_t off = 0; off < size; off += 4096) static_cast<volatile char*>(p)[off] = 0;
    }
}

bool page_out(void* p, size_t size) { return sys::madvise(p, size, MADV_PAGEOUT) == 0; }

uint32_t coarse_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint32_t(ts.tv_sec);
}

void write_all(int fd, const char* s, size_t n) {
    while (n) {
        long w = sys::write(fd, s, n);
        if (w == -EINTR) continue;
        if (w < 0) break;
        s += w;
        n -= size_t(w);
    }
}

void random_bytes(void* buf, size_t n) {
    // The system call, not glibc's getrandom(): its symbol version
    // (GLIBC_2.25) would be one more for ld.so to check at every process
    // start (src/os/dso_link.cpp), for a call made once.
    if (sys::getrandom(buf, n, GRND_NONBLOCK) == long(n)) return;
    // AT_RANDOM: 16 bytes the kernel gave this process; mix with the clock so
    // two uses differ.
    unsigned char* out = static_cast<unsigned char*>(buf);
    const unsigned char* r = reinterpret_cast<const unsigned char*>(getauxval(AT_RANDOM));
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = uint64_t(ts.tv_nsec) ^ (uint64_t(ts.tv_sec) << 32) ^ reinterpret_cast<uintptr_t>(&ts);
    for (size_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = static_cast<unsigned char>(x ^ (r ? r[i % 16] : 0));
    }
}

bool secure_mode() { return getauxval(AT_SECURE) != 0; }

uint64_t statm_bytes(unsigned field) {
    long fd = sys::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    long n = sys::read(int(fd), buf, sizeof buf - 1);
    sys::close(int(fd));
    if (n <= 0) return 0;
    buf[n] = 0;
    const char* s = buf;
    for (; field; --field) {
        while (*s && *s != ' ') ++s;
        while (*s == ' ') ++s;
    }
    uint64_t pages = 0;
    while (*s >= '0' && *s <= '9') pages = pages * 10 + uint64_t(*s++ - '0');
    return pages * page_size();
}

int seccomp_mode() {
    long fd = sys::open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[4096];
    size_t used = 0;
    for (long n; used < sizeof buf - 1 && (n = sys::read(int(fd), buf + used, sizeof buf - 1 - used)) > 0;)
        used += size_t(n);
    sys::close(int(fd));
    buf[used] = 0;
    static constexpr char kKey[] = "\nSeccomp:";
    constexpr size_t kLen = sizeof kKey - 1;
    for (size_t i = 0; i + kLen <= used; ++i) {
        if (memcmp(buf + i, kKey, kLen) != 0) continue;
        const char* s = buf + i + kLen;
        while (*s == ' ' || *s == '\t') ++s;
        return *s >= '0' && *s <= '9' ? *s - '0' : -1;
    }
    return -1;
}

AddressSpaceLimit address_space_limit() {
    rlimit rl{};
    if (sys::getrlimit_as(&rl) != 0) return {~uint64_t(0), ~uint64_t(0)};
    auto value = [](rlim_t v) { return v == RLIM_INFINITY ? ~uint64_t(0) : uint64_t(v); };
    return {value(rl.rlim_cur), value(rl.rlim_max)};
}

}  // namespace btm::os
