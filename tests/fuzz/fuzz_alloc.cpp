// libFuzzer target for the allocator itself, linked in (not under ASan: the
// allocator is what is tested, and the fuzzer's own allocations go through
// it too).
//
// Default mode: the input is split in two op streams run by two threads at
// once; each keeps a shadow of its live blocks (size, alignment, fill byte)
// and checks every block's contents, alignment, usable size and that no two
// blocks overlap.  Blocks also cross threads through a mailbox, so frees of
// the other thread's blocks (remote frees) happen.
//
// BTM_FUZZ_MISUSE: each input names one misuse from issue 18 and its
// parameters; a forked child commits it and the parent checks the
// documented reaction (btmalloc(7), HARDENING): an abort with the report,
// or for a foreign pointer no reaction at all.
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace {

[[noreturn]] void fail(const char* what, const void* p, size_t n) {
    fprintf(stderr, "fuzz_alloc: %s (block %p, %zu bytes)\n", what, p, n);
    abort();
}

// Reads the input a byte or a word at a time; zeros once it runs out.
struct Input {
    const uint8_t* p;
    size_t n;
    uint8_t byte() { return n ? (--n, *p++) : 0; }
    uint32_t word() { return uint32_t(byte()) | uint32_t(byte()) << 8 | uint32_t(byte()) << 16; }
};

// Mostly small sizes, some medium (slab classes up to 1 MiB), a few large.
size_t pick_size(Input& in) {
    uint8_t kind = in.byte();
    uint32_t w = in.word();
    if (kind < 200) return w % 1025;
    if (kind < 250) return w % (1 << 20);
    return (size_t(1) << 20) + w % (size_t(8) << 20);
}

#ifndef BTM_FUZZ_MISUSE

struct Block {
    unsigned char* p = nullptr;
    size_t n = 0;
    uint8_t fill = 0;
};

// Big blocks are checked at their ends only, so that an input runs fast.
inline constexpr size_t kFullCheck = 65536, kEdge = 4096;

template <class F>
void each_checked_range(const Block& b, F f) {
    if (b.n <= kFullCheck) return f(size_t(0), b.n);
    f(size_t(0), kEdge);
    f(b.n - kEdge, kEdge);
}

void fill(Block& b, uint8_t v) {
    b.fill = v;
    each_checked_range(b, [&](size_t at, size_t len) { memset(b.p + at, v, len); });
}

void verify(const Block& b, size_t upto) {
    each_checked_range(b, [&](size_t at, size_t len) {
        for (size_t i = at; i < at + len && i < upto; ++i)
            if (b.p[i] != b.fill) fail("contents changed", b.p, b.n);
    });
}

void check_new(const Block& b, size_t align) {
    if (!b.p) fail("allocation failed", b.p, b.n);
    if (reinterpret_cast<uintptr_t>(b.p) % align) fail("misaligned", b.p, b.n);
    if (malloc_usable_size(b.p) < b.n) fail("usable size below the request", b.p, b.n);
}

// Blocks in flight from one thread to the other.
struct Mailbox {
    std::mutex lock;
    Block slots[16];
};

inline constexpr unsigned kSlots = 32;

void run_stream(Input in, Mailbox& box, uint8_t tag) {
    Block live[kSlots];
    auto overlaps = [&](const Block& b, unsigned self) {
        for (unsigned i = 0; i < kSlots; ++i)
            if (i != self && live[i].p && b.p < live[i].p + (live[i].n ? live[i].n : 1) &&
                live[i].p < b.p + (b.n ? b.n : 1))
                return true;
        return false;
    };
    while (in.n) {
        uint8_t op = in.byte();
        unsigned s = in.byte() % kSlots;
        Block& b = live[s];
        switch (op % 8) {
            case 0:
            case 1:
            case 4: {  // malloc, calloc, aligned_alloc into slot s (freeing what was there)
                if (b.p) {
                    verify(b, b.n);
                    free(b.p);
                }
                b.n = pick_size(in);
                size_t align = 16;
                if (op % 8 == 0) b.p = static_cast<unsigned char*>(malloc(b.n));
                if (op % 8 == 1) {
                    b.p = static_cast<unsigned char*>(calloc(1, b.n));
                    b.fill = 0;
                    if (b.p) verify(b, b.n);
                }
                if (op % 8 == 4) {
                    align = size_t(1) << (in.byte() % 14);
                    b.p = static_cast<unsigned char*>(aligned_alloc(align, b.n));
                    if (align < 16) align = 16;
                }
                check_new(b, align);
                if (overlaps(b, s)) fail("overlaps a live block", b.p, b.n);
                fill(b, uint8_t(tag ^ in.byte()));
                break;
            }
            case 2: {  // realloc keeps the common prefix
                size_t n = pick_size(in);
                Block old = b;
                auto* q = static_cast<unsigned char*>(realloc(b.p, n));
                b = Block{q, n, old.fill};
                if (n == 0 && old.p) {  // realloc(p, 0) frees p and returns NULL, as glibc's
                    if (q) fail("realloc(p, 0) returned a block", q, 0);
                    break;
                }
                check_new(b, 16);
                verify(Block{q, old.n, old.fill}, old.n < n ? old.n : n);  // the bytes old had checked
                if (overlaps(b, s)) fail("overlaps a live block", b.p, b.n);
                fill(b, uint8_t(old.fill + 1));
                break;
            }
            case 3:
                if (b.p) verify(b, b.n);
                free(b.p);
                b = Block{};
                break;
            case 5:
                if (b.p && malloc_usable_size(b.p) < b.n) fail("usable size shrank", b.p, b.n);
                break;
            case 6:
            case 7: {  // hand slot s to the other thread, or take one and free it
                std::lock_guard<std::mutex> guard(box.lock);
                Block& m = box.slots[in.byte() % 16];
                if (op % 8 == 6 && b.p && !m.p) std::swap(m, b);
                else if (op % 8 == 7 && m.p) {
                    verify(m, m.n);
                    free(m.p);
                    m = Block{};
                }
                break;
            }
        }
    }
    for (Block& b : live) {
        if (b.p) verify(b, b.n);
        free(b.p);
    }
}

// With FUZZ_ALLOC_LAST set, each input is first written to that file: a
// report of btmalloc's ends the process with abort() and SIGABRT at its
// default action, so libFuzzer itself saves no crash input then.
void save_input(const uint8_t* data, size_t size) {
    static const char* path = getenv("FUZZ_ALLOC_LAST");
    if (!path) return;
    FILE* f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, size, f);
    fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    save_input(data, size);
    Mailbox box;
    size_t half = size / 2;
    std::thread other(run_stream, Input{data + half, size - half}, std::ref(box), uint8_t(0xa5));
    run_stream(Input{data, half}, box, 0x5a);
    other.join();
    for (Block& m : box.slots) {
        if (m.p) verify(m, m.n);
        free(m.p);
    }
    return 0;
}

#else  // BTM_FUZZ_MISUSE

__attribute__((noinline)) void* site_malloc(size_t n) {
    void* p = malloc(n);
    asm volatile("" : : "r"(p) : "memory");  // one call site, not a tail call
    return p;
}

// The misuses; each returns normally only if btmalloc did not stop it.
enum Case : uint8_t { kDoubleFree, kLargeDoubleFree, kLinkFlip, kForeign, kCases };

// Flips one bit of the first word of a freed slot (its link, once it is on
// a slab's free list) and allocates from the same site: every block handed
// out must be a slot start that is no live block and comes out once, or
// malloc must abort with a report.  A slot still in the thread's bin is
// referenced from the bin's array only, so the flip changes nothing.
void link_flip(Input& in) {
    size_t n = 16 + in.byte() % 64 * 16;
    void* blocks[48];
    for (void*& p : blocks) p = site_malloc(n);
    unsigned victim = in.byte() % 48;
    unsigned bit = in.byte() % 64;
    free(blocks[(victim + 1) % 48]);
    free(blocks[victim]);
    reinterpret_cast<uint64_t*>(blocks[victim])[0] ^= uint64_t(1) << bit;
    void* got[8];
    for (void*& p : got) {
        p = site_malloc(n);
        if (malloc_usable_size(p) == 0) fail("handed out a non-block", p, n);
        for (unsigned i = 0; i < 48; ++i)
            if (i != victim && i != (victim + 1) % 48 && p == blocks[i]) fail("handed out a live block", p, n);
    }
    for (unsigned i = 0; i < 8; ++i)
        for (unsigned j = 0; j < i; ++j)
            if (got[i] == got[j]) fail("handed out a block twice", got[i], n);
}

void commit(Case c, Input& in) {
    switch (c) {
        case kDoubleFree: {
            size_t n = pick_size(in) % 65536;
            void* p = site_malloc(n);
            free(p);
            free(p);
            break;
        }
        case kLargeDoubleFree: {
            size_t n = (size_t(2) << 20) + in.word() % (size_t(8) << 20);
            void* p = site_malloc(n);
            free(p);
            free(p);
            break;
        }
        case kLinkFlip:
            link_flip(in);
            break;
        default: {  // foreign pointers past a live block: ignored, never a fault
            char* live = static_cast<char*>(site_malloc(64));
            free(live + (size_t(2) << 20) + (in.word() % (1u << 22)) * 4096 + 8);
            break;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in{data, size};
    auto c = Case(in.byte() % kCases);
    int fds[2];
    if (pipe(fds) != 0) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        commit(c, in);
        _exit(0);
    }
    close(fds[1]);
    std::string err;
    char buf[1024];
    ssize_t r;
    while ((r = read(fds[0], buf, sizeof buf)) > 0) err.append(buf, size_t(r));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const char* expected = c == kLinkFlip ? "btmalloc: corrupted free list" : "btmalloc: double free of ";
    bool reported = aborted && err.find(expected) != std::string::npos;
    bool ok = c == kForeign ? clean : c == kLinkFlip ? reported || clean : reported;
    if (!ok) {
        fprintf(stderr, "fuzz_alloc: case %d: status %#x, child's stderr:\n%s\n", int(c), status, err.c_str());
        abort();
    }
    return 0;
}

#endif
