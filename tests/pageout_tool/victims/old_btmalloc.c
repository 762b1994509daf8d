/* Stands in for a btmalloc built before the introspection descriptor (the
 * signal design): it exports btm_pageout_cold and catches RTMIN+3 the way
 * that library did.  Preloaded into `sleep`, it must be reported as too old
 * ("restart it") and never signalled: its handler leaves a mark file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

size_t btm_pageout_cold(unsigned min_age_seconds) {
    (void)min_age_seconds;
    return 0;
}

static void on_signal(int sig) {
    (void)sig;
    const char* mark = getenv("BTM_TEST_OLD_MARK");
    if (mark) close(open(mark, O_WRONLY | O_CREAT, 0600));
}

__attribute__((constructor)) static void install(void) { signal(SIGRTMIN + 3, on_signal); }
