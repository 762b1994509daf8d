// Loading the configuration inside the allocator: the system files, the
// drop-in directory, BTM_CONF, BTM_<KEY> variables and the program name.
//
// Everything here may run inside malloc's first call, before libc is fully
// initialised: only system calls (os/syscall.h: no PLT binding, no errno,
// and stat without glibc's GLIBC_2.33 wrappers), fixed static buffers and no
// locale-dependent or allocating libc functions (no stdio, no strerror, no
// getenv, no opendir).
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>

#include "config/config.h"
#include "config/parser.h"
#include "config/text.h"
#include "os/syscall.h"

namespace btm::config {
namespace {

// Static so that load() costs little stack: the allocator may first be
// called on a small thread stack.  The caller serialises load() (see
// config.h), and the tools call it from one thread.  One buffer serves both
// getdents64 and read: a directory is listed completely before its files
// are read.
// Both after .bss on x86-64, as the core's cold arrays (see BTM_COLD_BSS in
// core/base.h, which this layer does not include).
#if defined(__x86_64__)
#define BTM_CONFIG_COLD __attribute__((section(".lbss")))
#else
#define BTM_CONFIG_COLD
#endif
alignas(8) BTM_CONFIG_COLD char g_io_buf[4096];
constexpr size_t kPathCap = 256;
BTM_CONFIG_COLD char g_dropin_paths[kMaxDropIns][kPathCap];
BTM_CONFIG_COLD char g_program[256];  // only for [program] headers

void report_file(const Options& opt, const char* file, const char* text) {
    opt.sink.report(opt.sink.ctx, Diagnostic{file, 0, text});
}

// strerror() may allocate or load locale data; a few fixed phrases suffice.
// Cold, as the other error paths here: out of the code every process maps.
template <size_t N>
BTM_CONFIG_RARE void put_errno(Text<N>& t, int err) {
    switch (err) {
        case ENOENT: t.put("no such file or directory"); break;
        case EACCES: t.put("permission denied"); break;
        case ENOTDIR: t.put("a path component is not a directory"); break;
        case ELOOP: t.put("too many symbolic links"); break;
        case ENAMETOOLONG: t.put("name too long"); break;
        case EMFILE:
        case ENFILE: t.put("too many open files"); break;
        case EIO: t.put("input/output error"); break;
        default: t.put("error ").put_u64(unsigned(err)); break;
    }
}

const char* file_type(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

// Whoever can write a file the library reads decides the configuration of
// every process, root's daemons included: such a file is ignored whole.
bool report_untrusted(const Options& opt, const char* file, const struct stat& st) {
    if (trusted_owner(st.st_uid, st.st_mode, opt.trusted_uid)) return false;
    report_untrusted_file(opt, file, st.st_uid, st.st_mode);
    return true;
}

// Matches "BTM_<NAME>=" where NAME is `key` in upper case; returns the value.
const char* env_value(const char* entry, const char* key) {
    // Not strncmp: a libc call here is a lazy binding in every process start.
    if (entry[0] != 'B' || entry[1] != 'T' || entry[2] != 'M' || entry[3] != '_') return nullptr;
    const char* e = entry + 4;
    for (; *key; ++key, ++e) {
        char up = (*key >= 'a' && *key <= 'z') ? char(*key - 'a' + 'A') : *key;
        if (*e != up) return nullptr;
    }
    return *e == '=' ? e + 1 : nullptr;
}

// Keeps the kMaxDropIns smallest names, sorted; returns false if `path` was
// dropped or pushed another one out.
bool insert_sorted(unsigned* count, const char* path) {
    unsigned n = *count, pos = n;
    while (pos > 0 && strcmp(g_dropin_paths[pos - 1], path) > 0) --pos;
    if (pos == kMaxDropIns) return false;
    unsigned last = n < kMaxDropIns ? n : kMaxDropIns - 1;
    for (unsigned i = last; i > pos; --i) memcpy(g_dropin_paths[i], g_dropin_paths[i - 1], kPathCap);
    size_t len = strlen(path);
    memcpy(g_dropin_paths[pos], path, len + 1);
    if (n < kMaxDropIns) {
        *count = n + 1;
        return true;
    }
    return false;
}

struct LinuxDirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[1];
};

unsigned load_dropins(const Options& opt, Values* out, Origin* origin) {
    const char* dir = opt.dropin_dir;
    if (!dir) return 0;
    long opened = sys::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (opened < 0) {
        if (opened == -ENOENT) return 0;
        Text<128> t;
        t.put("cannot open directory: ");
        put_errno(t, int(-opened));
        report_file(opt, dir, t.c_str());
        return 1;
    }
    int fd = int(opened);
    struct stat st;
    if (sys::fstat(fd, &st) != 0 || report_untrusted(opt, dir, st)) {
        sys::close(fd);
        return 1;
    }
    size_t dir_len = strlen(dir);
    unsigned count = 0, problems = 0;
    bool dropped = false;
    for (;;) {
        long got = sys::getdents64(fd, g_io_buf, sizeof g_io_buf);
        if (got == -EINTR) continue;
        if (got <= 0) break;
        for (long off = 0; off < got;) {
            const auto* d = reinterpret_cast<const LinuxDirent64*>(g_io_buf + off);
            off += d->d_reclen;
            const char* name = d->d_name;
            size_t len = strlen(name);
            // Hidden files, editor back-ups and package-manager leftovers
            // (x.conf~, x.conf.dpkg-old) do not end in ".conf".
            if (name[0] == '.' || len <= 5 || memcmp(name + len - 5, ".conf", 5) != 0) continue;
            if (len > kMaxDropInName || dir_len + 1 + len >= kPathCap) {
                Text<kPathCap + 64> t;
                t.put("file name too long; ").safe(name, len, 64).put(" ignored");
                report_file(opt, dir, t.c_str());
                ++problems;
                continue;
            }
            Text<kPathCap> path;
            path.put(dir).put('/').put(name, len);
            dropped |= !insert_sorted(&count, path.c_str());
        }
    }
    sys::close(fd);
    if (dropped) {
        Text<128> t;
        t.put("more than ").put_u64(kMaxDropIns).put(" *.conf files; only the first ").put_u64(kMaxDropIns)
            .put(" in name order are read");
        report_file(opt, dir, t.c_str());
        ++problems;
    }
    for (unsigned i = 0; i < count; ++i) problems += load_file(g_dropin_paths[i], false, opt, out, origin);
    return problems;
}

}  // namespace

const char* find_env(char** env, const char* key) {
    if (!env) return nullptr;
    for (char** e = env; *e; ++e)
        if (const char* v = env_value(*e, key)) return v;
    return nullptr;
}

// Here, not in parse.cpp with the parser: every process runs these, and
// the parser's code is laid out last in the library (CMakeLists.txt).
Origin* reset_origin(Origin* origin) {
    for (unsigned i = 0; i < kKnobCount; ++i) {
        origin->source[i] = kDefault;
        origin->file[i] = nullptr;
        origin->line[i] = 0;
        origin->in_section[i] = false;
    }
    return origin;
}

void set_defaults(Values* out, Origin* origin) {
    for (unsigned i = 0; i < kKnobCount; ++i) field(*out, i) = kKnobs[i].def;
    if (origin) reset_origin(origin);
}

BTM_CONFIG_RARE void write_to_stderr(void*, const Diagnostic& d) {
    Text<512> t;
    t.put("btmalloc: ").put(d.file ? d.file : "?");
    if (d.line) t.put(':').put_u64(d.line);
    t.put(": ").put(d.text).put('\n');
    if (t.buf[t.len - 1] != '\n') t.buf[t.len - 1] = '\n';
    sys::write(2, t.buf, t.len);
}

namespace {

// BTM_CONF's file skips the owner rule (`any_owner`): the environment
// that names it could set any knob directly.  So does a file btmctl config
// check is given by name (Options::any_owner).
unsigned load_one(const char* path, bool must_exist, bool any_owner, const Options& opt, Values* out,
                  Origin* origin) {
    // stat() first so that a FIFO or a device is never opened at all (opening
    // some devices has side effects); fstat() after open closes the race.
    struct stat st;
    Text<128> t;
    if (long r = sys::stat(path, &st); r != 0) {
        int err = int(-r);
        if ((err == ENOENT || err == ENOTDIR) && !must_exist) return 0;
        t.put("cannot open: ");
        put_errno(t, err);
        report_file(opt, path, t.c_str());
        return 1;
    }
    int fd = -1;
    if (S_ISREG(st.st_mode)) {
        long opened = sys::open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (opened < 0) {
            t.put("cannot open: ");
            put_errno(t, int(-opened));
            report_file(opt, path, t.c_str());
            return 1;
        }
        fd = int(opened);
        if (sys::fstat(fd, &st) != 0) st.st_mode = 0;
    }
    if (!S_ISREG(st.st_mode)) {
        if (fd >= 0) sys::close(fd);
        t.put(file_type(st.st_mode)).put(", not a regular file; ignored");
        report_file(opt, path, t.c_str());
        return 1;
    }
    // btmctl config check (check_all) still lists the lines' problems,
    // from a copy that is then dropped.
    unsigned untrusted = any_owner ? 0 : report_untrusted(opt, path, st);
    if (untrusted && !opt.check_all) {
        sys::close(fd);
        return 1;
    }
    if (st.st_size > off_t(kMaxFileBytes)) {
        sys::close(fd);
        t.put("larger than ").put_u64(kMaxFileBytes).put(" bytes; ignored");
        report_file(opt, path, t.c_str());
        return 1;
    }
    Origin scratch;
    Values dropped;
    if (!origin || untrusted) origin = reset_origin(&scratch);
    if (untrusted) out = &dropped;
    Parser parser(path, opt, out, origin);
    size_t total = 0;
    for (;;) {
        long n = sys::read(fd, g_io_buf, sizeof g_io_buf);
        if (n == -EINTR) continue;
        if (n < 0) {
            t.put("read error: ");
            put_errno(t, int(-n));
            t.put("; the rest is ignored");
            parser.report(0, t.c_str());
            break;
        }
        if (n == 0) break;
        total += size_t(n);
        if (total > kMaxFileBytes) {
            t.put("grew past ").put_u64(kMaxFileBytes).put(" bytes while being read; the rest is ignored");
            parser.report(0, t.c_str());
            break;
        }
        parser.feed(g_io_buf, size_t(n));
    }
    parser.finish();
    sys::close(fd);
    return untrusted + parser.problems();
}

}  // namespace

unsigned load_file(const char* path, bool must_exist, const Options& opt, Values* out, Origin* origin) {
    return load_one(path, must_exist, opt.any_owner, opt, out, origin);
}

unsigned load_files(char** env, const Options& opt, Values* out, Origin* origin) {
    if (!opt.secure) {
        if (const char* conf = find_env(env, "conf")) {
            // BTM_CONF replaces the whole set of files, drop-ins included, so
            // a test or an experiment sees exactly the file it names.
            return *conf ? load_one(conf, true, true, opt, out, origin) : 0;
        }
    }
    unsigned problems = opt.system_file ? load_file(opt.system_file, false, opt, out, origin) : 0;
    return problems + load_dropins(opt, out, origin);
}

// True if any variable starts with BTM_, BTM_CONF aside (load_files reads
// it; apply_environment has nothing to do with it): most processes have
// none, and then apply_environment() (parse.cpp, laid out last) is not even
// called.  This runs in every process's first malloc under
// /etc/ld.so.preload, and a test or a benchmark that sets only BTM_CONF
// must see the code pages of an ordinary process.
bool has_btm_variable(char** env) {
    for (char** e = env; *e; ++e) {
        const char* v = *e;
        if (v[0] != 'B' || v[1] != 'T' || v[2] != 'M' || v[3] != '_') continue;
        if (!env_value(v, "conf")) return true;
    }
    return false;
}

// Only a [program] header asks for it.  Late, not cold: optimised for size,
// its memcmp would become an import.
BTM_CONFIG_LATE bool program_name(char* buf, size_t cap) {
    if (cap == 0) return false;
    char path[512];
    long n = sys::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) {
        static constexpr char kDeleted[] = " (deleted)";
        constexpr size_t kDeletedLen = sizeof kDeleted - 1;
        if (size_t(n) > kDeletedLen && memcmp(path + n - kDeletedLen, kDeleted, kDeletedLen) == 0)
            n -= kDeletedLen;
    } else {
        // No /proc/self/exe (some sandboxes): comm, truncated to 15 bytes.
        long fd = sys::open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
        if (fd < 0) return false;
        do n = sys::read(int(fd), path, sizeof path - 1); while (n == -EINTR);
        sys::close(int(fd));
        while (n > 0 && (path[n - 1] == '\n' || path[n - 1] == '\0')) --n;
        if (n <= 0) return false;
    }
    size_t start = size_t(n);
    while (start > 0 && path[start - 1] != '/') --start;
    size_t len = size_t(n) - start;
    if (len == 0 || len >= cap) return false;
    memcpy(buf, path + start, len);
    buf[len] = '\0';
    return true;
}

namespace {
const char* exe_program() { return program_name(g_program, sizeof g_program) ? g_program : nullptr; }
}  // namespace

void load_with(char** env, Options opt, Values* out, Origin* origin) {
    Origin scratch;
    if (!origin) origin = &scratch;
    set_defaults(out, origin);
    if (!opt.program && !opt.find_program) opt.find_program = exe_program;
    load_files(env, opt, out, origin);
    // Tested here as well: apply_environment() lives with the parser, in
    // code a process without BTM_ variables never needs to map.
    if (env && !opt.secure && has_btm_variable(env)) apply_environment(env, opt, out, origin);
}

void load(Values* out, Origin* origin, char** environ_ptr, bool secure) {
    Origin scratch;
    if (!origin) origin = &scratch;
    Options opt;
    opt.secure = secure;
    load_with(environ_ptr, opt, out, origin);
    if (out->verbose) print(*out, *origin, 2);
}

BTM_CONFIG_RARE void print(const Values& v, const Origin& origin, int fd) {
    for (unsigned i = 0; i < kKnobCount; ++i) {
        Text<512> t;
        char value[32];
        format_value(i, field(v, i), value, sizeof value);
        t.put("btmalloc: ").put(kKnobs[i].key).put(" = ").put(value).put(" (");
        switch (origin.source[i]) {
            case kDefault: t.put("default"); break;
            case kEnvironment: t.put("environment"); break;
            case kFile: t.put(origin.file[i] ? origin.file[i] : "?").put(':').put_u64(origin.line[i]); break;
        }
        t.put(")\n");
        if (t.buf[t.len - 1] != '\n') t.buf[t.len - 1] = '\n';
        sys::write(fd, t.buf, t.len);
    }
}

}  // namespace btm::config
