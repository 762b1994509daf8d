// Names itself argv[1] (prctl PR_SET_NAME: /proc/self/comm), allocates, says
// "ready" and waits to be killed.  Its argv[0] is whatever the caller chose.
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc < 2 || prctl(PR_SET_NAME, argv[1], 0, 0, 0) != 0) return 2;
    volatile char* p = malloc(100);
    p[0] = 1;
    if (write(1, "ready\n", 6) != 6) return 3;
    for (;;) pause();
}
