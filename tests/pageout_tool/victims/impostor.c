/* Issue 17, case 1c: a program without btmalloc that maps a file named
 * libbtmalloc-data.bin (argv[3]) and catches every real-time signal.  The
 * signal design signalled it on the strength of the name. */
#include <fcntl.h>
#include <sys/mman.h>

#include "victim.h"

static volatile sig_atomic_t got;
static void on_signal(int sig) { got = sig; }

int main(int argc, char** argv) {
    int seconds = victim_seconds(argc, argv);
    if (argc < 4) return kExitUsage;
    int fd = open(argv[3], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, 1 << 20) != 0) return kExitUsage;
    void* map = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return kExitUsage;
    for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) signal(s, on_signal);
    victim_ready(argv[1]);
    if (victim_wait_unless(&got, seconds)) {
        victim_report("signalled");
        return kExitHandler;
    }
    return kExitOk;
}
