// A library whose initialiser allocates.  Preloaded after libbtmalloc.so,
// ld.so runs this initialiser first: btmalloc starts inside it, before its
// own initialiser has seen the environment (preload_test.sh).
#include <stdlib.h>

void* volatile btm_test_early_block;  // kept: an unused block could be optimised away

__attribute__((constructor)) static void allocate_early(void) { btm_test_early_block = malloc(100); }
