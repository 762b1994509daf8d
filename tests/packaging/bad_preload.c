/* A preloadable library that prints from a constructor in every process it
 * is loaded into, as a broken /etc/ld.so.preload entry would: btmctl's trial
 * runs must notice and refuse to enable it. */
#include <unistd.h>

__attribute__((constructor)) static void complain(void)
{
    static const char msg[] = "bad_preload: loaded into this process\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
}
