/* Issue 17, case 2: the main thread waits in sleep(), poll() with a timeout
 * or nanosleep() (argv[3]); a signal would make sleep return early and the
 * other two fail with EINTR despite SA_RESTART.  Exit 3 on EINTR, 4 on a
 * short sleep. */
#include <poll.h>

#include "victim.h"

static void on_signal(int sig) { (void)sig; }

int main(int argc, char** argv) {
    int seconds = victim_seconds(argc, argv);
    if (argc < 4) return kExitUsage;
    victim_fill();
    /* Handlers with SA_RESTART for every RT signal, so a stray one would be
     * caught (not kill it) and show as an interrupted wait. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) sigaction(s, &sa, NULL);
    victim_ready(argv[1]);
    double start = victim_now();
    if (strcmp(argv[3], "sleep") == 0) {
        if (sleep((unsigned)seconds) != 0) {
            victim_report("sleep returned early");
            return kExitShort;
        }
    } else if (strcmp(argv[3], "poll") == 0) {
        if (poll(NULL, 0, seconds * 1000) < 0) {
            victim_report(errno == EINTR ? "poll: EINTR" : "poll failed");
            return kExitEintr;
        }
    } else if (strcmp(argv[3], "nanosleep") == 0) {
        struct timespec ts = {seconds, 0}, left;
        if (nanosleep(&ts, &left) != 0) {
            victim_report(errno == EINTR ? "nanosleep: EINTR" : "nanosleep failed");
            return kExitEintr;
        }
    } else {
        return kExitUsage;
    }
    if (victim_now() - start < seconds - 0.05) {
        victim_report("short wait");
        return kExitShort;
    }
    return victim_intact() ? kExitOk : kExitCorrupt;
}
