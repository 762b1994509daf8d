/* The test service of `btmctl heap` (issue 20), run under
 * LD_PRELOAD=libbtmalloc.so.  Three call sites, each in its own function:
 *   leak_steady   keeps blocks of kSteadySize bytes at kSteadyRate bytes
 *                 per second of the monotonic clock (catching up after a
 *                 late tick, so the true rate is exact)
 *   keep_stable   holds kStableBlocks blocks, freeing and remaking them
 *                 every tick (live bytes constant)
 *   leak_large    keeps one kLargeSize block per second (a large-block leak)
 * Mode argv[2]: "all" runs the three; "startup" makes a few small blocks
 * and then only sleeps (a process still in its start-up phase); "large"
 * runs leak_large alone; "report" makes the stable set and a second of the
 * steady leak, prints malloc_stats() (to stderr) and exits; "large-report"
 * leaks ten large blocks and "startup-report" eight small ones (a process
 * still in its start-up phase), then print malloc_stats() and exit.  Writes
 * "ready" to argv[1] once the stable set exists; ends on SIGTERM. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    kTickMs = 10,
    kSteadySize = 1000,
    kSteadyRate = 400000,
    kStableBlocks = 2000,
    kStableSize = 300,
    kLargeSize = 3 << 20,
};

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
static void* volatile sink;

__attribute__((noinline)) static void leak_steady(long blocks) {
    for (long i = 0; i < blocks; ++i) {
        char* p = malloc(kSteadySize);
        memset(p, 1, kSteadySize);
        sink = p;
    }
}

static char* stable[kStableBlocks];
__attribute__((noinline)) static void keep_stable(int from, int to) {
    for (int i = from; i < to; ++i) {
        free(stable[i]);
        stable[i] = malloc(kStableSize);
        memset(stable[i], 2, kStableSize);
    }
}

__attribute__((noinline)) static void leak_large(void) {
    char* p = malloc(kLargeSize);
    memset(p, 3, kLargeSize);
    sink = p;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void ready(const char* path) {
    FILE* f = fopen(path, "w");
    if (!f) exit(2);
    fputs("ready\n", f);
    fclose(f);
}

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    signal(SIGTERM, on_term);
    const char* mode = argv[2];
    int all = strcmp(mode, "all") == 0, large = strcmp(mode, "large") == 0;
    if (strcmp(mode, "report") == 0) {
        keep_stable(0, kStableBlocks);
        leak_steady(kSteadyRate / kSteadySize);
        malloc_stats();
        return 0;
    }
    if (strcmp(mode, "large-report") == 0 || strcmp(mode, "startup-report") == 0) {
        if (mode[0] == 'l')
            for (int i = 0; i < 10; ++i) leak_large();
        else
            leak_steady(8);
        malloc_stats();
        return 0;
    }
    if (!all && !large && strcmp(mode, "startup") != 0) return 2;
    if (all) keep_stable(0, kStableBlocks);
    if (!all && !large) leak_steady(8);
    ready(argv[1]);
    struct timespec tick = {0, kTickMs * 1000000L};
    double start = now();
    long leaked = 0, large_blocks = 0;
    for (unsigned n = 0; !stop; ++n) {
        double elapsed = now() - start;
        if (all) {
            long due = (long)(elapsed * kSteadyRate / kSteadySize);
            leak_steady(due - leaked);
            leaked = due;
            keep_stable((int)(n % 10) * (kStableBlocks / 10), (int)(n % 10 + 1) * (kStableBlocks / 10));
        }
        for (; (all || large) && large_blocks <= (long)elapsed; ++large_blocks) leak_large();
        nanosleep(&tick, NULL);
    }
    return 0;
}
