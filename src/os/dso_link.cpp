// What libbtmalloc.so links with instead of the C start files: part of the
// shared library only (CMakeLists.txt keeps this file out of libbtmalloc.a,
// whose users link the real ones).
//
// Why: the library is preloaded into every process, and most processes are
// short.  ld.so's work for an extra object is paid at each start-up, even by
// a process that never allocates (/bin/true): crtbeginS.o/crti.o bring four
// weak references (_ITM_*TMCloneTable, __gmon_start__, __cxa_finalize) that
// each cost a search of every loaded object, a _init/_fini pair and a
// destructor that runs at exit: about 2,700 instructions of a /bin/true.
// The library is linked with -nostartfiles and -z nodelete (a malloc is
// never unloaded, so nothing needs __cxa_finalize); __dso_handle, which
// crtbeginS.o would define, is defined here for pthread_atfork and any
// static destructor.

extern "C" {

// crtbeginS.o's definition: a word that holds its own address, unique to this
// object; __cxa_atexit and pthread_atfork use it to name the library.
__attribute__((visibility("hidden"))) void* __dso_handle = &__dso_handle;

}  // extern "C"
