/* Issue 17, case 1a: a preloaded program that installs its own handlers for
 * every real-time signal (the old pageout signal RTMIN+3 among them) after
 * its first malloc.  Under the signal design btm-pageout signalled it and
 * its handler ran (exit 7).  Nothing may ever reach these handlers. */
#include "victim.h"

static volatile sig_atomic_t got;
static void on_signal(int sig) { got = sig; }

int main(int argc, char** argv) {
    int seconds = victim_seconds(argc, argv);
    victim_fill();
    for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) signal(s, on_signal);
    victim_ready(argv[1]);
    if (victim_wait_unless(&got, seconds)) {
        victim_report("its own handler ran");
        return kExitHandler;
    }
    return victim_intact() ? kExitOk : kExitCorrupt;
}
