#include "os/memfd.h"

#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os/os.h"
#include "os/syscall.h"

namespace btm::os::memfd {

namespace {

#if defined(BTM_RAW_SYSCALLS)
long sc(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
    return sys::call6(n, a, b, c, d, e, f);
}
#else
long sc(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
    int saved = errno;
    long r = ::syscall(n, a, b, c, d, e, f);
    if (r < 0) r = -errno;
    errno = saved;
    return r;
}
#endif

#ifndef MFD_CLOEXEC
constexpr unsigned kCloexec = 1;
#else
constexpr unsigned kCloexec = MFD_CLOEXEC;
#endif
constexpr int kSeekData = 3, kSeekHole = 4;

}  // namespace

int create(uint64_t size) {
    long fd = sc(SYS_memfd_create, sys::arg("btmalloc-heap"), kCloexec);
    if (sys::failed(fd)) return int(fd);
    long r = sc(SYS_ftruncate, fd, long(size));
    if (sys::failed(r)) {
        sys::close(int(fd));
        return int(r);
    }
    return int(fd);
}

void close(int fd) { sys::close(fd); }

bool map(void* p, size_t len, int fd, uint64_t off) {
    long r = sc(SYS_mmap, sys::arg(p), long(len), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, long(off));
    return !sys::failed(r) && reinterpret_cast<void*>(r) == p;
}

bool punch(int fd, uint64_t off, size_t len) {
    return sc(SYS_fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, long(off), long(len)) == 0;
}

bool release(void* p, size_t len) {
    // Refused (an anonymous chunk of a region whose memfd failed): the
    // anonymous way, which also keeps the zeros promise.
    return sys::madvise(p, len, MADV_REMOVE) == 0 || os::release(p, len);
}

bool copy(int from, int to, uint64_t len, void* scratch, size_t scratch_len) {
    uint64_t at = 0;
    while (at < len) {
        long data = sc(SYS_lseek, from, long(at), kSeekData);
        if (data == -ENXIO) return true;  // only a hole is left
        if (sys::failed(data)) return false;
        long hole = sc(SYS_lseek, from, data, kSeekHole);
        if (sys::failed(hole)) return false;
        uint64_t end = uint64_t(hole) < len ? uint64_t(hole) : len;
        for (uint64_t off = uint64_t(data); off < end;) {
            int64_t in = int64_t(off), out = int64_t(off);
            long n = sc(SYS_copy_file_range, from, sys::arg(&in), to, sys::arg(&out), long(end - off), 0);
            if (n == -EINTR) continue;
            if (sys::failed(n) || n == 0) {
                // Refused (an old kernel, a filter): bounce through memory.
                size_t k = end - off < scratch_len ? size_t(end - off) : scratch_len;
                long got = sc(SYS_pread64, from, sys::arg(scratch), long(k), long(off));
                if (got <= 0 || sc(SYS_pwrite64, to, sys::arg(scratch), got, long(off)) != got) return false;
                n = got;
            }
            off += uint64_t(n);
        }
        at = uint64_t(hole);
    }
    return true;
}

bool replace(int fd, int at) {
    if (fd == at) return true;
    bool ok = sc(SYS_dup3, fd, at, O_CLOEXEC) == at;
    sys::close(fd);
    return ok;
}

bool pipe(int fds[2]) { return sc(SYS_pipe2, sys::arg(fds), O_CLOEXEC) == 0; }

void signal_done(int fd) {
    char c = 1;
    sys::write(fd, &c, 1);
}

void wait_done(int fd) {
    char c;
    while (sys::read(fd, &c, 1) == -EINTR) {
    }
}

}  // namespace btm::os::memfd
