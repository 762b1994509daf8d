// A library for misuse_test to load with RTLD_DEEPBIND: its own calls to
// malloc, strdup and free then bind to the C library's allocator, not to the
// program's (RELIABILITY.md row 17).
#include <stdlib.h>
#include <string.h>

void* deepbind_malloc(size_t n) { return malloc(n); }
char* deepbind_strdup(const char* s) { return strdup(s); }
void deepbind_free(void* p) { free(p); }
