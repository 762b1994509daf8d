// What the memory-return tests read about their own process, without calling
// the allocator: an allocation while the test measures would run the very
// slow paths (and, with async = off, the inline aging ticks) being measured.
// Resident size from /proc/self/statm, the thread count from /proc/self/task
// (getdents64 into a stack buffer, not opendir, which mallocs), the
// allocator's counters, a monotonic clock, and output written with write(2).
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

#include "btmalloc.h"

namespace reclaim_test {

inline uint64_t mono_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}
inline uint64_t mono_ms() { return mono_ns() / 1000000u; }

inline void sleep_ms(unsigned ms) {
    timespec ts{time_t(ms / 1000), long(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// The second field of /proc/self/statm (resident pages) in bytes; 0 on error.
inline uint64_t rss_bytes() {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char* s = buf;
    while (*s && *s != ' ') ++s;  // skip the size field
    uint64_t pages = 0;
    for (++s; *s >= '0' && *s <= '9'; ++s) pages = pages * 10 + uint64_t(*s - '0');
    return pages * uint64_t(sysconf(_SC_PAGESIZE));
}

// Threads of this process (entries of /proc/self/task); -1 on error.
inline int task_count() {
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    alignas(8) char buf[4096];
    int count = 0;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n < 0) {
            count = -1;
            break;
        }
        if (n == 0) break;
        for (long off = 0; off < n;) {
            // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char* name = buf + off + 19;
            if (name[0] >= '0' && name[0] <= '9') ++count;
            off += reclen;
        }
    }
    close(fd);
    return count;
}

inline struct btm_stats stats_now() {
    struct btm_stats s{};
    s.version = BTM_STATS_VERSION;
    btm_stats(&s);
    return s;
}

// Formats into a stack buffer (integer and string conversions only: glibc's
// vsnprintf does not allocate for those) and writes it with write(2).
__attribute__((format(printf, 2, 3))) inline void say(int fd, const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = size_t(n) < sizeof buf ? size_t(n) : sizeof buf - 1;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += size_t(w);
    }
}

}  // namespace reclaim_test
