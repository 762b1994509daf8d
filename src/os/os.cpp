#include "os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

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

void* reserve_aligned(size_t size, size_t align) {
    int saved = errno;
    size_t over = size + align;
    void* p = mmap(nullptr, over, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    errno = saved;
    if (p == MAP_FAILED) return nullptr;
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uintptr_t aligned = (a + align - 1) & ~(uintptr_t(align) - 1);
    if (aligned > a) munmap(p, aligned - a);
    uintptr_t end = a + over;
    if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
    return reinterpret_cast<void*>(aligned);
}

bool commit(void* p, size_t size) {
    int saved = errno;
    bool ok = mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
    errno = saved;
    return ok;
}

void* map(size_t size) {
    int saved = errno;
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? nullptr : p;
}

void* map_aligned(size_t size, size_t align) {
    if (align <= page_size()) return map(size);
    int saved = errno;
    size_t over = size + align - page_size();
    void* p = mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = saved;
        return nullptr;
    }
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uintptr_t aligned = (a + align - 1) & ~(uintptr_t(align) - 1);
    if (aligned > a) munmap(p, aligned - a);
    uintptr_t end = a + over;
    if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
    errno = saved;
    return reinterpret_cast<void*>(aligned);
}

void unmap(void* p, size_t size) {
    int saved = errno;
    munmap(p, size);
    errno = saved;
}

void* remap(void* p, size_t old_size, size_t new_size) {
    int saved = errno;
    void* q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    errno = saved;
    return q == MAP_FAILED ? nullptr : q;
}

bool release(void* p, size_t size) {
    int saved = errno;
    bool ok = madvise(p, size, MADV_DONTNEED) == 0;
    // Released pages read back as zeros, and the heap counts on it (fresh
    // slots are handed out unwritten, calloc skips clearing them).  Where the
    // kernel refuses (locked pages: mlockall), the zeros are written instead.
    if (!ok) memset(p, 0, size);
    errno = saved;
    return ok;
}

void populate(void* p, size_t size) {
    constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE, Linux 5.14
    int saved = errno;
    if (madvise(p, size, kPopulateWrite) != 0) {
        // One write per 4 KiB reaches every page whatever the page size.
        for (size_t off = 0; off < size; off += 4096) static_cast<volatile char*>(p)[off] = 0;
    }
    errno = saved;
}

bool page_out(void* p, size_t size) {
    int saved = errno;
    bool ok = madvise(p, size, MADV_PAGEOUT) == 0;
    errno = saved;
    return ok;
}

uint32_t coarse_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint32_t(ts.tv_sec);
}

void no_huge_pages(void* p, size_t size) {
    int saved = errno;
    madvise(p, size, MADV_NOHUGEPAGE);
    errno = saved;
}

void write_all(int fd, const char* s, size_t n) {
    int saved = errno;
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            break;
        }
        s += w;
        n -= size_t(w);
    }
    errno = saved;
}

void random_bytes(void* buf, size_t n) {
    int saved = errno;
    // The system call, not glibc's getrandom(): its symbol version
    // (GLIBC_2.25) would be one more for ld.so to check at every process
    // start (src/os/dso_link.cpp), for a call made once.
    ssize_t got = syscall(SYS_getrandom, buf, n, GRND_NONBLOCK);
    errno = saved;
    if (got == ssize_t(n)) return;
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

uint64_t resident_bytes() {
    int saved = errno;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return 0;
    }
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    errno = saved;
    if (n <= 0) return 0;
    buf[n] = 0;
    const char* s = buf;
    while (*s && *s != ' ') ++s;  // skip total size
    while (*s == ' ') ++s;
    uint64_t pages = 0;
    while (*s >= '0' && *s <= '9') pages = pages * 10 + uint64_t(*s++ - '0');
    return pages * page_size();
}

uint64_t address_space_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return ~uint64_t(0);
    return rl.rlim_cur;
}

}  // namespace btm::os
