/* A program for the btm-pageout end-to-end test, run under
 * LD_PRELOAD=libbtmalloc.so.  It fills ~60 MB of small objects with a known
 * pattern and leaves them alone while it keeps a small hot set turning over
 * (as issue 5's test program: cold data beside a hot working set); on
 * SIGTERM (or after 30 s) it checks every
 * byte and writes `before=N after=M intact=0|1` (btm_stats pageout_requests,
 * found with dlsym so the program links to nothing special) to argv[1]. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kObjects = 60 * 1024, kSize = 1000, kHot = 256 };

struct stats { uint64_t f[28]; }; /* struct btm_stats, version 1 */
static volatile sig_atomic_t stop, own;
static void on_term(int sig) { (void)sig; stop = 1; }
static void on_own(int sig) { (void)sig; ++own; }

static long long requests(void) {
    int (*get)(struct stats*) = (int (*)(struct stats*))dlsym(RTLD_DEFAULT, "btm_stats");
    struct stats s;
    memset(&s, 0, sizeof s);
    s.f[0] = 1;
    if (!get || get(&s) != 0) return -1;
    return (long long)s.f[15]; /* pageout_requests */
}

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    signal(SIGTERM, on_term);
    static unsigned char* obj[kObjects];
    for (int i = 0; i < kObjects; ++i) {
        obj[i] = malloc(kSize);
        if (!obj[i]) return 3;
        for (int j = 0; j < kSize; ++j) obj[i][j] = (unsigned char)(i * 31 + j * 7);
    }
    /* BTM_TEST_OWN_HANDLER: the program takes the pageout signal for itself
     * (after btmalloc installed its handler at the first malloc). */
    if (getenv("BTM_TEST_OWN_HANDLER")) signal(SIGRTMIN + 3, on_own);
    long long before = requests();
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    static void* hot[kHot];
    for (int t = 0; t < 300 && !stop; ++t) {
        for (int k = 0; k < kHot; ++k) {
            free(hot[k]);
            hot[k] = malloc(64);
            if (hot[k]) memset(hot[k], t, 64);
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int k = 0; k < kHot; ++k) free(hot[k]);
    int intact = 1;
    for (int i = 0; i < kObjects; ++i)
        for (int j = 0; j < kSize; ++j)
            if (obj[i][j] != (unsigned char)(i * 31 + j * 7)) intact = 0;
    FILE* f = fopen(argv[1], "w");
    if (!f) return 4;
    fprintf(f, "before=%lld after=%lld intact=%d own=%d\n", before, requests(), intact, (int)own);
    fclose(f);
    return 0;
}
