/* The plain btmalloc process of the btm-pageout tests, run under
 * LD_PRELOAD=libbtmalloc.so.  It fills ~60 MB of small objects with a known
 * pattern and leaves them alone while it keeps a small hot set turning over
 * (cold data beside a hot working set); on SIGTERM (or after 30 s) it checks
 * every byte and writes `pageouts=N intact=0|1` to argv[1], N being the
 * count btm-pageout wrote back into the library's descriptor
 * (btm_introspect_v1, found with dlsym so the program links to nothing
 * special).  With BTM_TEST_EXIT_AFTER_PAGEOUT set it exits as soon as that
 * count moves: a process that is gone by the time the report is made.
 * With BTM_TEST_IDLE set the hot set stays still and only SIGTERM ends it:
 * an idle service.  With BTM_TEST_LARGE set the cold data is 100 MB of
 * large blocks (25 of 4 MiB, each its own mapping) instead. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kObjects = 60 * 1024, kSize = 1000, kHot = 256, kLargeObjects = 25, kLargeSize = 4 << 20 };

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

/* The descriptor's last word counts pageouts; its size is at byte 12. */
static long long pageouts(void) {
    const unsigned char* d = dlsym(RTLD_DEFAULT, "btm_introspect_v1");
    if (!d) return -1;
    uint32_t size;
    uint64_t n;
    memcpy(&size, d + 12, 4);
    memcpy(&n, d + size - 8, 8);
    return (long long)n;
}

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    signal(SIGTERM, on_term);
    static unsigned char* obj[kObjects];
    int large = getenv("BTM_TEST_LARGE") != NULL;
    int objects = large ? kLargeObjects : kObjects, size = large ? kLargeSize : kSize;
    for (int i = 0; i < objects; ++i) {
        obj[i] = malloc((size_t)size);
        if (!obj[i]) return 3;
        for (int j = 0; j < size; ++j) obj[i][j] = (unsigned char)(i * 31 + j * 7);
    }
    int exit_after = getenv("BTM_TEST_EXIT_AFTER_PAGEOUT") != NULL;
    int idle = getenv("BTM_TEST_IDLE") != NULL;
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    static void* hot[kHot];
    for (int t = 0; (idle || t < 300) && !stop; ++t) {
        for (int k = 0; k < kHot && (!idle || t == 0); ++k) {
            free(hot[k]);
            hot[k] = malloc(64);
            if (hot[k]) memset(hot[k], t, 64);
        }
        if (exit_after && pageouts() > 0) _exit(0);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int k = 0; k < kHot; ++k) free(hot[k]);
    int intact = 1;
    for (int i = 0; i < objects; ++i)
        for (int j = 0; j < size; ++j)
            if (obj[i][j] != (unsigned char)(i * 31 + j * 7)) intact = 0;
    FILE* f = fopen(argv[1], "w");
    if (!f) return 4;
    fprintf(f, "pageouts=%lld intact=%d\n", pageouts(), intact);
    fclose(f);
    return 0;
}
