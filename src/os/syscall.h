// System calls the library makes for itself, without glibc's wrappers.
//
// Why: every wrapper the library calls is a PLT slot that ld.so binds at its
// first call, about 600 instructions of symbol lookup per function in every
// process that allocates (16 of them in a `cat`); a wrapper sets errno, which
// the allocator must then save and restore for its caller; and a wrapper can
// be interposed: a program or another preloaded library that wraps mmap()
// and allocates inside would re-enter malloc from inside malloc.
//
// Each function returns the kernel's raw result: a value >= 0, or -errno
// (failed() tells).  errno is never touched.  On x86-64 and AArch64 these
// are the system call instructions themselves; elsewhere (32-bit ABIs with
// their own mmap and stat conventions) they are glibc's wrappers with errno
// saved and restored.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace btm::sys {

inline bool failed(long r) { return static_cast<unsigned long>(r) > static_cast<unsigned long>(-4096L); }

#if defined(__x86_64__) || defined(__aarch64__)
#define BTM_RAW_SYSCALLS 1

inline long call6(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#else
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
#endif
}
inline long call(long n, long a = 0, long b = 0, long c = 0, long d = 0) { return call6(n, a, b, c, d, 0, 0); }
template <class T>
long arg(T v) {
    return (long)(v);
}

inline void* mmap(void* p, size_t len, int prot, int flags) {
    long r = call6(SYS_mmap, arg(p), arg(len), prot, flags, -1, 0);
    return failed(r) ? MAP_FAILED : reinterpret_cast<void*>(r);
}
inline long munmap(void* p, size_t len) { return call(SYS_munmap, arg(p), arg(len)); }
inline long mprotect(void* p, size_t len, int prot) { return call(SYS_mprotect, arg(p), arg(len), prot); }
inline long madvise(void* p, size_t len, int advice) { return call(SYS_madvise, arg(p), arg(len), advice); }
inline long mincore(void* p, size_t len, unsigned char* vec) { return call(SYS_mincore, arg(p), arg(len), arg(vec)); }
inline void* mremap(void* p, size_t old_len, size_t new_len, int flags) {
    long r = call(SYS_mremap, arg(p), arg(old_len), arg(new_len), flags);
    return failed(r) ? MAP_FAILED : reinterpret_cast<void*>(r);
}
inline long mremap_fixed(void* p, size_t len, void* to) {
    return call6(SYS_mremap, arg(p), arg(len), arg(len), MREMAP_MAYMOVE | MREMAP_FIXED, arg(to), 0);
}
inline long open(const char* path, int flags) { return call(SYS_openat, AT_FDCWD, arg(path), flags); }
inline long close(int fd) { return call(SYS_close, fd); }
inline long read(int fd, void* buf, size_t n) { return call(SYS_read, fd, arg(buf), arg(n)); }
inline long write(int fd, const void* buf, size_t n) { return call(SYS_write, fd, arg(buf), arg(n)); }
inline long readlink(const char* path, char* buf, size_t n) {
    return call(SYS_readlinkat, AT_FDCWD, arg(path), arg(buf), arg(n));
}
// The kernel's struct stat is glibc's on both architectures.
inline long stat(const char* path, struct ::stat* st) { return call(SYS_newfstatat, AT_FDCWD, arg(path), arg(st), 0); }
inline long fstat(int fd, struct ::stat* st) { return call(SYS_fstat, fd, arg(st)); }
inline long getdents64(int fd, void* buf, size_t n) { return call(SYS_getdents64, fd, arg(buf), arg(n)); }
inline long getrandom(void* buf, size_t n, unsigned flags) { return call(SYS_getrandom, arg(buf), arg(n), flags); }
inline long getrlimit_as(struct ::rlimit* rl) { return call(SYS_prlimit64, 0, RLIMIT_AS, 0, arg(rl)); }
inline long futex(void* word, int op, uint32_t val, const struct ::timespec* timeout) {
    return call(SYS_futex, arg(word), op, long(val), arg(timeout));
}

#else  // glibc's wrappers, errno kept

template <class F>
long keep_errno(F f) {
    int saved = errno;
    long r = f();
    if (r < 0) r = -errno;
    errno = saved;
    return r;
}
inline void* mmap(void* p, size_t len, int prot, int flags) {
    int saved = errno;
    void* r = ::mmap(p, len, prot, flags, -1, 0);
    errno = saved;
    return r;
}
inline long munmap(void* p, size_t len) { return keep_errno([&] { return long(::munmap(p, len)); }); }
inline long mprotect(void* p, size_t len, int prot) { return keep_errno([&] { return long(::mprotect(p, len, prot)); }); }
inline long madvise(void* p, size_t len, int advice) { return keep_errno([&] { return long(::madvise(p, len, advice)); }); }
inline long mincore(void* p, size_t len, unsigned char* vec) {
    return keep_errno([&] { return long(::mincore(p, len, vec)); });
}
inline void* mremap(void* p, size_t old_len, size_t new_len, int flags) {
    int saved = errno;
    void* r = ::mremap(p, old_len, new_len, flags);
    errno = saved;
    return r;
}
inline long mremap_fixed(void* p, size_t len, void* to) {
    int saved = errno;
    long r = ::mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED ? -errno : 0;
    errno = saved;
    return r;
}
inline long open(const char* path, int flags) { return keep_errno([&] { return long(::open(path, flags)); }); }
inline long close(int fd) { return keep_errno([&] { return long(::close(fd)); }); }
inline long read(int fd, void* buf, size_t n) { return keep_errno([&] { return long(::read(fd, buf, n)); }); }
inline long write(int fd, const void* buf, size_t n) { return keep_errno([&] { return long(::write(fd, buf, n)); }); }
inline long readlink(const char* path, char* buf, size_t n) {
    return keep_errno([&] { return long(::readlink(path, buf, n)); });
}
inline long stat(const char* path, struct ::stat* st) { return keep_errno([&] { return long(::stat(path, st)); }); }
inline long fstat(int fd, struct ::stat* st) { return keep_errno([&] { return long(::fstat(fd, st)); }); }
inline long getdents64(int fd, void* buf, size_t n) {
    return keep_errno([&] { return long(::syscall(SYS_getdents64, fd, buf, n)); });
}
inline long getrandom(void* buf, size_t n, unsigned flags) {
    return keep_errno([&] { return long(::syscall(SYS_getrandom, buf, n, flags)); });
}
inline long getrlimit_as(struct ::rlimit* rl) { return keep_errno([&] { return long(::getrlimit(RLIMIT_AS, rl)); }); }
inline long futex(void* word, int op, uint32_t val, const struct ::timespec* timeout) {
    return keep_errno([&] { return ::syscall(SYS_futex, word, op, val, timeout, nullptr, 0); });
}

#endif

}  // namespace btm::sys
