// startup_parts: where a preloaded allocator's start-up time goes.
//
// A library with nothing in it but an initialiser that makes, step by step,
// the kernel calls and first page touches btmalloc's first malloc makes
// (src/core/alloc.cpp do_init, src/core/chunk.cpp reserve_region): preload
// it into a short program (`cat` of a small file under bench_runprog) and
// compare with an empty library and with btmalloc itself.  STEP selects how
// far the initialiser goes:
//   0  nothing (an initialiser alone)
//   1  the four small system calls: stat of /etc/btmalloc.conf, open of
//      /etc/btmalloc.conf.d, getrandom, getrlimit(RLIMIT_AS)
//   2  + the reservation: a 64 GiB PROT_NONE mapping, MADV_NOHUGEPAGE on
//      all of it, one read-write range for the tables and the first chunk
//   3  + a write to each of the three table pages a small process touches
//   4  + the first chunk's two header pages
//   5  + nine data pages (`cat`'s slabs)
// The malloc calls themselves still go to glibc, whose heap pages come on
// top: read step 5 as an upper bound.
//
//   for s in 0 1 2 3 4 5; do
//     cc -shared -fPIC -O2 -nostartfiles -DSTEP=$s -o /tmp/parts$s.so bench/startup_parts.c
//   done
//   build-perf/bench/bench_runprog --name x --repeat 1000 --preload /tmp/parts2.so -- /usr/bin/cat FILE
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef STEP
#define STEP 5
#endif

int btm_bench_emptydso;  // bench_runprog's check that a preload took effect

__attribute__((constructor)) static void start_up_like_btmalloc(void) {
    if (STEP >= 1) {
        struct stat st;
        stat("/etc/btmalloc.conf", &st);
        int fd = open("/etc/btmalloc.conf.d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) close(fd);
        char key[16];
        getrandom(key, sizeof key, GRND_NONBLOCK);
        struct rlimit rl;
        getrlimit(RLIMIT_AS, &rl);
    }
    if (STEP >= 2) {
        const size_t chunk = 2u << 20, tables = 400u << 10, size = (size_t)64 << 30;
        const size_t total = tables + size + chunk;
        char* raw = mmap(0, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (raw == MAP_FAILED) return;
        madvise(raw, total, MADV_NOHUGEPAGE);
        char* base = (char*)(((unsigned long)raw + tables + chunk - 1) & ~(unsigned long)(chunk - 1));
        if (mprotect(base - tables, tables + chunk, PROT_READ | PROT_WRITE) != 0) return;
        if (STEP >= 3) {
            base[-(long)tables] = 1;
            base[-(long)tables + 0x21000] = 1;
            base[-(long)tables + 0x61000] = 1;
        }
        if (STEP >= 4) {
            base[0] = 1;
            base[4096] = 1;
        }
        if (STEP >= 5)
            for (int k = 0; k < 9; k++) base[(10 + k) * 4096] = 1;
    }
}
