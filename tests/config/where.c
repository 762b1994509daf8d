/* Prints which allocator served a batch of small allocations: "glibc" when
 * every block lies in the brk heap ([heap] in /proc/self/maps, where glibc's
 * main arena puts small blocks of the main thread), "btmalloc" when none
 * does (btmalloc only maps memory), "mixed" otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    enum { kBlocks = 100 };
    void *blocks[kBlocks];
    for (int i = 0; i < kBlocks; ++i) {
        blocks[i] = malloc(64 + (size_t)i);
        if (!blocks[i]) return 1;
        memset(blocks[i], i, 64);
    }
    unsigned long lo = 0, hi = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    while (maps && fgets(line, sizeof line, maps))
        if (strstr(line, "[heap]")) sscanf(line, "%lx-%lx", &lo, &hi);
    if (maps) fclose(maps);
    int in_heap = 0;
    for (int i = 0; i < kBlocks; ++i) {
        unsigned long a = (unsigned long)blocks[i];
        in_heap += a >= lo && a < hi;
        free(blocks[i]);
    }
    puts(in_heap == kBlocks ? "glibc" : in_heap == 0 ? "btmalloc" : "mixed");
    return 0;
}
