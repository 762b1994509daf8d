// What libbtmalloc.so links with instead of the C start files and two
// glibc symbols: part of the shared library only (CMakeLists.txt keeps this
// file out of libbtmalloc.a, whose users link the real ones).
//
// Why: the library is preloaded into every process, and most processes are
// short.  ld.so's work for an extra object is paid at each start-up, even by
// a process that never allocates (/bin/true):
//   - crtbeginS.o/crti.o bring four weak references (_ITM_*TMCloneTable,
//     __gmon_start__, __cxa_finalize) that each cost a search of every loaded
//     object, a _init/_fini pair and a destructor that runs at exit: about
//     2,700 instructions of a /bin/true.  The library is linked with
//     -nostartfiles and -z nodelete (a malloc is never unloaded, so nothing
//     needs __cxa_finalize); __dso_handle, which crtbeginS.o would define,
//     is defined here for pthread_atfork and any static destructor.
//   - every distinct glibc symbol version the library needs costs ld.so a
//     walk of libc's version definitions, 200 to 450 instructions each.
//     __stack_chk_fail (GLIBC_2.4: liburing.a, and the library itself when
//     built with -fstack-protector) and memcpy (GLIBC_2.14) are defined
//     here, hidden, so that these two versions are not needed; stat, fstat
//     and getrandom are called as system calls for the same reason
//     (src/config/config.cpp, src/os/os.cpp).
// tests/check_library.sh lists the versions the library needs.
#include <cstddef>

#include "os/os.h"

extern "C" {

// crtbeginS.o's definition: a word that holds its own address, unique to this
// object; __cxa_atexit and pthread_atfork use it to name the library.
__attribute__((visibility("hidden"))) void* __dso_handle = &__dso_handle;

void* memmove(void* dst, const void* src, size_t n) noexcept;
void abort() noexcept __attribute__((noreturn));

// glibc's memcpy@GLIBC_2.14 and memmove are the same code on x86-64; memmove
// is also a correct memcpy everywhere.  Calls the compiler emits for struct
// copies land here as well.  Named through an assembler label: the compiler's
// own declaration of memcpy, the builtin, would make it exported.
__attribute__((visibility("hidden"))) void* dso_memcpy(void* dst, const void* src, size_t n) noexcept
    __asm__("memcpy");
void* dso_memcpy(void* dst, const void* src, size_t n) noexcept { return memmove(dst, src, n); }

// The stack protector's failure path (liburing.a is built with
// -fstack-protector-strong).  The stack is corrupt: write a fixed message
// and abort, as glibc's own __stack_chk_fail does.
__attribute__((visibility("hidden"), noreturn)) void __stack_chk_fail() {
    static const char msg[] = "btmalloc: *** stack smashing detected ***: terminated\n";
    btm::os::write_all(2, msg, sizeof msg - 1);
    abort();
}

}  // extern "C"
