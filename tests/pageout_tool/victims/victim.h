/* What the programs of the btm-pageout safety test (issue 17) share.  Each
 * runs under LD_PRELOAD=libbtmalloc.so (the impostor without it), fills a
 * few MiB of small objects with a known pattern (a cold set for btm-pageout
 * to page out), says "ready" in the file argv[1], then does its own kind of
 * waiting for argv[2] seconds and exits with one of the codes below: 0 only
 * if nothing interrupted it and every byte is intact. */
#ifndef BTM_VICTIM_H
#define BTM_VICTIM_H
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    kExitOk = 0,
    kExitUsage = 2,
    kExitEintr = 3,       /* a wait returned EINTR */
    kExitShort = 4,       /* a sleep ended early */
    kExitCorrupt = 5,     /* the cold set changed */
    kExitHandler = 7,     /* the program's own handler ran */
    kExitHalt = 99,       /* the signalfd reader got its "halt" */
};

enum { kVictimObjects = 8 * 1024, kVictimSize = 1000 };
static unsigned char* victim_obj[kVictimObjects];

static void victim_fill(void) {
    for (int i = 0; i < kVictimObjects; ++i) {
        victim_obj[i] = malloc(kVictimSize);
        if (!victim_obj[i]) exit(kExitCorrupt);
        for (int j = 0; j < kVictimSize; ++j) victim_obj[i][j] = (unsigned char)(i * 31 + j * 7);
    }
}

static int victim_intact(void) {
    for (int i = 0; i < kVictimObjects; ++i)
        for (int j = 0; j < kVictimSize; ++j)
            if (victim_obj[i][j] != (unsigned char)(i * 31 + j * 7)) return 0;
    return 1;
}

static void victim_ready(const char* path) {
    FILE* f = fopen(path, "w");
    if (!f) exit(kExitUsage);
    fprintf(f, "ready %d\n", (int)getpid());
    fclose(f);
}

static double victim_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* argv[1] = ready file, argv[2] = seconds to wait. */
static int victim_seconds(int argc, char** argv) {
    if (argc < 3) exit(kExitUsage);
    int s = atoi(argv[2]);
    if (s <= 0) exit(kExitUsage);
    return s;
}

/* Waits `seconds`, or until *got (set by a handler) is non-zero; returns it. */
static int victim_wait_unless(volatile sig_atomic_t* got, int seconds) {
    for (double end = victim_now() + seconds; victim_now() < end && !*got;) usleep(20000);
    return *got;
}

static void victim_report(const char* what) {
    fprintf(stderr, "%d: %s\n", (int)getpid(), what);
}

#endif
