// Stands in for the allocator's start-up: calls btm::config::load() the way
// the core does from malloc's first call, while counting every allocation
// the process makes, then does ordinary work.  On stdout:
//   allocations_during_load=N
//   secure=0|1
//   KEY=VALUE SOURCE      one line per knob; SOURCE is default, environment or FILE:LINE
//   ran ok
// Exit status 3 if load() allocated.
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

extern char** environ;

namespace {
volatile bool g_counting = false;
volatile unsigned g_allocations = 0;
void count() {
    if (g_counting) g_allocations = g_allocations + 1;
}
}  // namespace

// Every way into the allocator is counted while load() runs.
extern "C" {
void* malloc(size_t n) {
    count();
    return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
    count();
    return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
    count();
    return __libc_realloc(p, n);
}
void free(void* p) {
    count();
    __libc_free(p);
}
void* memalign(size_t a, size_t n) {
    count();
    return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
    count();
    return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
    count();
    void* p = __libc_memalign(a, n);
    if (!p) return 12;  // ENOMEM
    *out = p;
    return 0;
}
}

int main() {
    using namespace btm::config;
    Values v;
    Origin o;
    bool secure = getauxval(AT_SECURE) != 0;
    g_counting = true;
    load(&v, &o, environ, secure);
    g_counting = false;
    unsigned during_load = g_allocations;

    printf("allocations_during_load=%u\nsecure=%d\n", during_load, secure ? 1 : 0);
    for (unsigned i = 0; i < kKnobCount; ++i) {
        char value[32];
        format_value(i, field(v, i), value, sizeof value);
        printf("%s=%s ", kKnobs[i].key, value);
        if (o.source[i] == kDefault) printf("default\n");
        else if (o.source[i] == kEnvironment) printf("environment\n");
        else printf("%s:%u\n", o.file[i], o.line[i]);
    }
    // Ordinary work after start-up.
    std::map<int, std::string> m;
    for (int i = 0; i < 10000; ++i) m[i] = std::to_string(i * 7);
    std::vector<void*> blocks;
    for (size_t i = 0; i < 1000; ++i) blocks.push_back(malloc(i * 13 + 1));
    for (void* p : blocks) free(p);
    printf(m[9999] == "69993" ? "ran ok\n" : "ran wrong\n");
    return during_load ? 3 : 0;
}
