// Fuzz target for the configuration parser.  For any input it checks that
// the parser never crashes, never reads outside the input (run under
// AddressSanitizer: libFuzzer hands over an exactly sized heap copy),
// never allocates, leaves every knob inside its range, reports only
// printable one-line diagnostics, and gives the same result whether the
// input arrives whole or in pieces.
//
// Built by build.sh with clang and libFuzzer, and by CMake (replay_main.cpp)
// to replay corpus/ in ctest.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/parser.h"

#if defined(__SANITIZE_ADDRESS__)
#define BTM_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BTM_FUZZ_ASAN 1
#endif
#endif

#ifdef BTM_FUZZ_ASAN
// The sanitizer runtime's allocation hooks (sanitizer/allocator_interface.h,
// which GCC does not install; its libasan has the function).
extern "C" int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void*, size_t), void (*free_hook)(const volatile void*));
#endif

namespace {

using namespace btm::config;

// Per thread: the hooks see every thread's allocations, and libFuzzer's own
// threads (its RSS watcher starting up) may allocate while the parser runs;
// under load that made the first inputs fail now and then.
thread_local volatile bool g_watch = false;
volatile unsigned g_allocations = 0;

#ifdef BTM_FUZZ_ASAN
void on_malloc(const volatile void*, size_t) {
    if (g_watch) g_allocations = g_allocations + 1;
}
void on_free(const volatile void*) {}
#endif

void check(bool ok, const char* what) {
    if (!ok) {
        // No stdio: it might allocate, and this is the failure path anyway.
        (void)!write(2, what, strlen(what));
        (void)!write(2, "\n", 1);
        abort();
    }
}

struct Tally {
    unsigned count = 0;
    uint64_t hash = 1469598103934665603u;
    static void report(void* ctx, const Diagnostic& d) {
        auto* t = static_cast<Tally*>(ctx);
        ++t->count;
        check(d.text != nullptr && d.file != nullptr, "diagnostic without text or file");
        size_t n = strlen(d.text);
        check(n > 0 && n < 512, "diagnostic length");
        for (size_t i = 0; i < n; ++i) {
            unsigned char c = static_cast<unsigned char>(d.text[i]);
            check(c >= 0x20 && c < 0x7f, "diagnostic with a non-printable byte");
            t->hash = (t->hash ^ c) * 1099511628211u;
        }
        t->hash = (t->hash ^ d.line) * 1099511628211u;
    }
};

struct Outcome {
    Values v;
    Origin o;
    Tally tally;
    unsigned problems;
};

// Parses data in pieces of the given sizes (cycled); a size of 0 means whole.
void parse(const uint8_t* data, size_t size, const Options& base, size_t piece, Outcome* out) {
    Options opt = base;
    out->tally = Tally{};
    opt.sink = {Tally::report, &out->tally};
    set_defaults(&out->v, &out->o);
    Parser p("fuzz.conf", opt, &out->v, &out->o);
    const char* s = reinterpret_cast<const char*>(data);
    if (piece == 0) piece = size ? size : 1;
    for (size_t i = 0; i < size; i += piece) p.feed(s + i, size - i < piece ? size - i : piece);
    p.finish();
    out->problems = p.problems();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
#ifdef BTM_FUZZ_ASAN
    static bool hooked = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0;
    (void)hooked;
#endif
    // The first byte, when there is one, picks the options; the rest is the
    // file, so a corpus of real configuration files still works.
    Options opt;
    uint8_t mode = size ? data[0] : 0;
    opt.program = (mode & 1) ? "python3.11" : (mode & 2) ? nullptr : "prog";
    opt.check_all = mode & 4;
    opt.secure = mode & 8;
    opt.max_warnings = (mode & 16) ? 0 : 10;

    static Outcome whole, split;
    g_watch = true;
    parse(data, size, opt, 0, &whole);
    parse(data, size, opt, 1 + (mode >> 5) * 37, &split);
    g_watch = false;
    check(g_allocations == 0, "the parser allocated");

    check(whole.problems == split.problems, "pieces: different problem count");
    check(whole.tally.count == split.tally.count && whole.tally.hash == split.tally.hash,
          "pieces: different diagnostics");
    for (unsigned i = 0; i < kKnobCount; ++i) {
        check(field(whole.v, i) == field(split.v, i), "pieces: different value");
        check(whole.o.line[i] == split.o.line[i], "pieces: different origin");
        check(in_range(i, field(whole.v, i)), "value out of range");
        check(whole.o.source[i] == kDefault || whole.o.line[i] > 0, "file origin without a line");
        char buf[32];
        size_t n = format_value(i, field(whole.v, i), buf, sizeof buf);
        uint64_t back = 0;
        check(parse_value(i, buf, n, &back, nullptr) && back == field(whole.v, i), "format does not read back");
    }
    check(opt.max_warnings == 0 || whole.tally.count <= opt.max_warnings + 1, "warning cap");

    // The helpers on raw input: a pattern and a name cut from the data, and
    // the data as a value of every knob.
    if (size > 1) {
        const char* s = reinterpret_cast<const char*>(data + 1);
        size_t half = (size - 1) / 2;
        g_watch = true;
        glob_match(s, half < 256 ? half : 256, s + half, (size - 1 - half) < 256 ? size - 1 - half : 256);
        for (unsigned i = 0; i < kKnobCount; ++i) {
            uint64_t v;
            const char* why;
            parse_value(i, s, size - 1 < 64 ? size - 1 : 64, &v, &why);
        }
        find_knob(s, size - 1 < 64 ? size - 1 : 64);
        g_watch = false;
        check(g_allocations == 0, "a helper allocated");
    }
    return 0;
}
