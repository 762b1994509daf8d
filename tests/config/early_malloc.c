// A library whose initialiser allocates.  Preloaded after libbtmalloc.so,
// ld.so runs this initialiser first: btmalloc gets its first malloc before
// its own initialiser has seen the environment (preload_test.sh).  100
// bytes by default; BTM_TEST_EARLY_BYTES asks for more, in 1 KiB blocks
// kept live, to go past what btmalloc serves before its initialiser.
#include <stdlib.h>

void* volatile btm_test_early_block;  // kept: an unused block could be optimised away

__attribute__((constructor)) static void allocate_early(void) {
    const char* want = getenv("BTM_TEST_EARLY_BYTES");
    long bytes = want ? atol(want) : 100;
    if (bytes <= 100) {
        btm_test_early_block = malloc(100);
        return;
    }
    void** chain = NULL;
    for (long got = 0; got < bytes; got += 1024) {
        void** block = malloc(1024);
        if (!block) return;
        *block = chain;
        chain = block;
    }
    btm_test_early_block = chain;
}
