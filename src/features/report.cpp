#include "features/report.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdlib.h>

#include <cstring>

#include "os/os.h"
#include "os/syscall.h"

namespace btm::report {

Line& Line::str(const char* s) {
    while (*s && n < sizeof buf - 1) buf[n++] = *s++;
    return *this;
}

Line& Line::hex(uint64_t v) {
    char tmp[17];
    int i = 16;
    tmp[i] = 0;
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    return str("0x").str(tmp + i);
}

Line& Line::dec(uint64_t v) {
    char tmp[21];
    int i = 20;
    tmp[i] = 0;
    do {
        tmp[--i] = char('0' + v % 10);
        v /= 10;
    } while (v);
    return str(tmp + i);
}

namespace {

uint64_t parse_hex(const char*& s) {
    uint64_t v = 0;
    for (;; ++s) {
        char c = *s;
        if (c >= '0' && c <= '9') v = v * 16 + uint64_t(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + uint64_t(c - 'a' + 10);
        else return v;
    }
}

// Looks addr up in /proc/self/maps, one line at a time from a small buffer.
// System calls, not glibc's wrappers: a program (fakeroot, a sandbox shim)
// may interpose open and read with code that allocates, and this runs on
// the way to abort with the heap in a bad state.
bool find_module(uintptr_t addr, char* path, size_t path_len, uint64_t* offset) {
    long opened = sys::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (opened < 0) return false;
    int fd = int(opened);
    char buf[4096];
    size_t have = 0;
    bool found = false;
    for (;;) {
        long r = sys::read(fd, buf + have, sizeof buf - 1 - have);
        if (r == -EINTR) continue;
        if (r <= 0) break;
        have += size_t(r);
        buf[have] = 0;
        char* line = buf;
        char* nl;
        while ((nl = static_cast<char*>(memchr(line, '\n', size_t(buf + have - line))))) {
            *nl = 0;
            const char* s = line;
            uint64_t lo = parse_hex(s);
            ++s;
            uint64_t hi = parse_hex(s);
            if (addr >= lo && addr < hi) {
                while (*s == ' ') ++s;
                while (*s && *s != ' ') ++s;  // permissions
                while (*s == ' ') ++s;
                uint64_t file_off = parse_hex(s);
                for (int field = 0; field < 2; ++field) {  // device, inode
                    while (*s == ' ') ++s;
                    while (*s && *s != ' ') ++s;
                }
                while (*s == ' ') ++s;
                size_t i = 0;
                for (; s[i] && i < path_len - 1; ++i) path[i] = s[i];
                path[i] = 0;
                *offset = addr - lo + file_off;
                found = i > 0;
                sys::close(fd);
                return found;
            }
            line = nl + 1;
        }
        have = size_t(buf + have - line);
        memmove(buf, line, have);
        if (have == sizeof buf - 1) have = 0;  // absurdly long line: drop it
    }
    sys::close(fd);
    return found;
}

const char* base_name(const char* path) {
    const char* base = path;
    for (const char* q = path; *q; ++q)
        if (*q == '/') base = q + 1;
    return base;
}

// The GNU build-id note of the loaded object that holds `addr`, found in
// its mapped PT_NOTE segments (dl_iterate_phdr allocates nothing).
struct BuildId {
    uintptr_t addr;
    const unsigned char* bits = nullptr;
    uint32_t len = 0;
};

int find_build_id(struct dl_phdr_info* info, size_t, void* data) {
    BuildId* want = static_cast<BuildId*>(data);
    bool holds = false;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
        holds = holds || (ph.p_type == PT_LOAD && want->addr >= lo && want->addr - lo < ph.p_memsz);
    }
    if (!holds) return 0;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_NOTE) continue;
        const size_t align = ph.p_align == 8 ? 8 : 4;
        auto up = [&](size_t n) { return (n + align - 1) & ~(align - 1); };
        const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
        const char* end = p + ph.p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr)* n = reinterpret_cast<const ElfW(Nhdr)*>(p);
            const char* name = p + sizeof *n;
            const char* desc = name + up(n->n_namesz);
            if (desc + n->n_descsz > end) break;
            if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                want->bits = reinterpret_cast<const unsigned char*>(desc);
                want->len = n->n_descsz;
                return 1;
            }
            p = desc + up(n->n_descsz);
        }
    }
    return 1;
}

}  // namespace

Line& Line::site(uintptr_t addr) {
    char path[256];
    uint64_t off;
    if (addr && find_module(addr, path, sizeof path, &off)) return str(base_name(path)).str("+").hex(off);
    return addr ? hex(addr) : str("(unknown)");
}

Line& Line::site_with_build_id(uintptr_t addr) {
    char path[256];
    uint64_t off;
    if (!addr || !find_module(addr, path, sizeof path, &off)) return site(addr);
    str(base_name(path)).str("+").hex(off).str(" ");
    BuildId id{addr};
    dl_iterate_phdr(find_build_id, &id);
    if (!id.len) str("-");
    for (uint32_t i = 0; i < id.len && i < 64; ++i) {
        char b[3] = {"0123456789abcdef"[id.bits[i] >> 4], "0123456789abcdef"[id.bits[i] & 15], 0};
        str(b);
    }
    return str(" ").str(path);
}

void Line::emit(int fd) {
    if (n == 0 || buf[n - 1] != '\n') {
        if (n == sizeof buf - 1) --n;
        buf[n++] = '\n';
    }
    os::write_all(fd, buf, n);
}

void fatal(Line& line) {
    line.emit(2);
    // abort() would run no handlers of ours; make sure SIGABRT is not
    // blocked or ignored so the process really stops here.
    signal(SIGABRT, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGABRT);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    abort();
}

}  // namespace btm::report
