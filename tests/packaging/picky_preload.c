/* Preloadable libraries that break only some programs, as an allocator bug
 * can: btmctl's trial runs must include such a program and refuse them.
 * Built three times (tests/packaging/CMakeLists.txt), each with one of:
 *   PICKY_PACKAGE_MANAGER  aborts in apt-get, dpkg-query and rpm only;
 *   PICKY_SECURE           aborts in secure-execution (set-user-ID) programs;
 *   PICKY_THREADS          aborts when a program starts a second thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#if defined(PICKY_PACKAGE_MANAGER)
__attribute__((constructor)) static void picky(void)
{
    const char* name = program_invocation_short_name;
    if (strcmp(name, "apt-get") == 0 || strcmp(name, "dpkg-query") == 0 || strcmp(name, "rpm") == 0) abort();
}
#elif defined(PICKY_SECURE)
__attribute__((constructor)) static void picky(void)
{
    if (getauxval(AT_SECURE)) abort();
}
#elif defined(PICKY_THREADS)
int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg)
{
    (void)thread, (void)attr, (void)start, (void)arg;
    abort();
}
#else
#error "build with one of PICKY_PACKAGE_MANAGER, PICKY_SECURE, PICKY_THREADS"
#endif
