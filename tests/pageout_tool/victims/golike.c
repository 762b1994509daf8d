/* Issue 17, the Go-like case: a runtime that owns many signals (Go installs
 * SA_ONSTACK|SA_RESTART|SA_SIGINFO handlers on every signal, SIGURG for
 * preemption, and the RT range), with threads parked in timed futex-like
 * waits.  Any signal delivered to it, or a wait cut short, fails it. */
#include <pthread.h>

#include "victim.h"

static volatile sig_atomic_t got;
static double until;
static void on_signal(int sig, siginfo_t* info, void* ctx) {
    (void)info, (void)ctx;
    got = sig;
}

static void* parked(void* arg) {
    (void)arg;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_lock(&m);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(until - victim_now()) + 1;
    while (pthread_cond_timedwait(&c, &m, &ts) == 0) {
    }
    pthread_mutex_unlock(&m);
    return NULL;
}

int main(int argc, char** argv) {
    int seconds = victim_seconds(argc, argv);
    victim_fill();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigfillset(&sa.sa_mask);
    sigaction(SIGURG, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) sigaction(s, &sa, NULL);
    until = victim_now() + seconds;
    pthread_t t[4];
    for (int i = 0; i < 4; ++i) pthread_create(&t[i], NULL, parked, NULL);
    victim_ready(argv[1]);
    while (victim_now() < until && !got) usleep(20000);
    if (got) {
        victim_report("one of its signals arrived");
        return kExitHandler;
    }
    for (int i = 0; i < 4; ++i) pthread_join(t[i], NULL);
    return victim_intact() ? kExitOk : kExitCorrupt;
}
