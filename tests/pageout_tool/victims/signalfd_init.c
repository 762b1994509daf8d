/* Issue 17, case 1b, modelled on systemd's PID 1: RTMIN+0..RTMIN+24 have
 * handlers installed, are blocked, and are read from a signalfd; RTMIN+3
 * means "halt" (exit 99), any other is reported (exit 7).  Runs as a plain
 * process or as PID 1 of a PID namespace; then it also reaps children. */
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "victim.h"

static void on_signal(int sig) { (void)sig; _exit(kExitHandler); }

int main(int argc, char** argv) {
    int seconds = victim_seconds(argc, argv);
    victim_fill();
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i <= 24; ++i) {
        signal(SIGRTMIN + i, on_signal);
        sigaddset(&set, SIGRTMIN + i);
    }
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) return kExitUsage;
    victim_ready(argv[1]);
    for (double end = victim_now() + seconds; victim_now() < end;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            struct signalfd_siginfo si;
            if (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
                if ((int)si.ssi_signo == SIGRTMIN + 3) {
                    victim_report("halt (RTMIN+3) read from the signalfd");
                    return kExitHalt;
                }
                victim_report("a real-time signal read from the signalfd");
                return kExitHandler;
            }
        }
        while (getpid() == 1 && waitpid(-1, NULL, WNOHANG) > 0) {
        }
    }
    return victim_intact() ? kExitOk : kExitCorrupt;
}
