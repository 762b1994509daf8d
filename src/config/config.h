// Runtime configuration: the values of the knobs in knobs.def and where each
// came from.
//
// Invariant: nothing reachable from this header allocates, throws or needs
// libstdc++.  load() runs inside malloc's first call, so files are read with
// raw system calls into fixed buffers, every input is bounded (file size,
// line length, number of drop-in files) and a bad input costs one warning,
// never the process.  The same code serves btmctl, the tests and the fuzzer
// through parse_buffer(), so what they check is what the allocator does.
//
// Precedence, lowest first: compiled default, /etc/btmalloc.conf,
// /etc/btmalloc.conf.d/*.conf (byte order of names), BTM_<KEY> environment
// variables.  Within the files a value from a matching [program] section
// beats a value outside any section; otherwise the later one wins.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::config {

enum Kind : uint8_t { BOOL, UINT, SIZE, MODE };
enum Source : uint8_t { kDefault, kFile, kEnvironment };

struct Values {
#define BTM_KNOB(key, kind, def, lo, hi, help) uint64_t key;
#include "config/knobs.def"
#undef BTM_KNOB
};

enum KnobId : unsigned {
#define BTM_KNOB(key, kind, def, lo, hi, help) k_##key,
#include "config/knobs.def"
#undef BTM_KNOB
    kKnobCount
};

// No pointers in the library's tables: each would be a relocation for ld.so
// to apply at every process start, preloaded or not.  The help texts, which
// only the tools print, are a table of their own.
struct KnobInfo {
    char key[20];  // a longer name fails to compile
    Kind kind;
    uint64_t def, lo, hi;
};

inline constexpr KnobInfo kKnobs[kKnobCount] = {
#define BTM_KNOB(key, kind, def, lo, hi, help) {#key, kind, def, lo, hi},
#include "config/knobs.def"
#undef BTM_KNOB
};

inline constexpr const char* kKnobHelp[kKnobCount] = {
#define BTM_KNOB(key, kind, def, lo, hi, help) help,
#include "config/knobs.def"
#undef BTM_KNOB
};

// The field of each knob, for code that walks the table.
inline constexpr uint64_t Values::*kFields[kKnobCount] = {
#define BTM_KNOB(key, kind, def, lo, hi, help) &Values::key,
#include "config/knobs.def"
#undef BTM_KNOB
};
inline uint64_t& field(Values& v, unsigned id) { return v.*kFields[id]; }
inline uint64_t field(const Values& v, unsigned id) { return v.*kFields[id]; }

// Where each knob's value came from.  `file` points at the path given to
// parse_buffer()/load_file(), or at storage inside this module for drop-in
// files (valid until the next call that reads a drop-in directory).
struct Origin {
    Source source[kKnobCount];
    const char* file[kKnobCount];  // kFile only
    uint32_t line[kKnobCount];     // kFile only
    bool in_section[kKnobCount];   // kFile only: set inside a [program] section
};

// Limits on what one file may cost.
inline constexpr size_t kMaxFileBytes = 64 * 1024;  // larger files are ignored whole
inline constexpr size_t kMaxLineBytes = 1024;       // longer lines are skipped
inline constexpr unsigned kMaxDropIns = 64;         // the first 64 names in order are read
inline constexpr size_t kMaxDropInName = 128;       // longer names are skipped

inline constexpr const char* kSystemFile = "/etc/btmalloc.conf";
inline constexpr const char* kDropInDir = "/etc/btmalloc.conf.d";

// One problem.  `file` is a path, or the environment variable's name with
// line 0; `text` is the reason, a short phrase without a final newline.
struct Diagnostic {
    const char* file;
    uint32_t line;
    const char* text;
};

// Where diagnostics go.  The default writes "btmalloc: FILE:LINE: TEXT\n" to
// fd 2 with one write(2).
struct Sink {
    void (*report)(void* ctx, const Diagnostic& d);
    void* ctx;
};
void write_to_stderr(void* ctx, const Diagnostic& d);
inline constexpr Sink kStderrSink = {write_to_stderr, nullptr};

struct Options {
    // Base name matched against [program PATTERN...] headers; null means no
    // section applies, unless find_program is set: then it is called the first
    // time a header is matched, and its result (null: unknown) is used.
    // load() asks /proc/self/exe so, only when a file has a [program] header:
    // most machines have none, and the readlink cost every process start a
    // procfs walk.
    const char* program = nullptr;
    const char* (*find_program)() = nullptr;
    // Secure-execution mode: the environment and BTM_CONF are ignored, and
    // diagnostics do not quote file contents.
    bool secure = false;
    // The owner the system files and the drop-in directory must have (with
    // no write permission for group or others) in every process; tests
    // running unprivileged name their own uid.
    uint32_t trusted_uid = 0;
    // load_file() reads a file whoever owns it (btmctl config check FILE:
    // a draft is checked for its contents).
    bool any_owner = false;
    // Also validate lines in [program] sections that do not apply (btmctl
    // config check); they are still not applied.
    bool check_all = false;
    // Diagnostics per file before the rest are summarised in one line; 0 = all.
    unsigned max_warnings = 10;
    Sink sink = kStderrSink;
    // The system files; tests point these at a temporary directory.
    const char* system_file = kSystemFile;
    const char* dropin_dir = kDropInDir;
};

// Compiled defaults into `out` and `origin`.
void set_defaults(Values* out, Origin* origin);

// Applies the configuration text data[0, len) -- any bytes at all -- as if
// read from a file named `file`.  Returns the number of problems reported.
unsigned parse_buffer(const char* data, size_t len, const char* file, const Options& opt,
                      Values* out, Origin* origin);

// Reads one file and applies it.  A missing file is reported only when
// `must_exist`.  Non-regular files, files over kMaxFileBytes and files not
// owned by opt.trusted_uid (root) or writable by group or others are ignored
// whole with one diagnostic (unless opt.any_owner); with opt.check_all the
// lines of an untrusted
// file are still checked, not applied.  Returns the number of problems
// reported.
unsigned load_file(const char* path, bool must_exist, const Options& opt, Values* out,
                   Origin* origin);

// The files in precedence order: either BTM_CONF's file alone (outside
// secure mode, when `env` sets it; an empty BTM_CONF reads no file; whoever
// owns it), or opt.system_file and then opt.dropin_dir/*.conf, under
// load_file()'s owner rule, as is the directory.
unsigned load_files(char** env, const Options& opt, Values* out, Origin* origin);

// BTM_<KEY>=VALUE variables (and BTM_NO_ASYNC=BOOL, the old spelling of
// async's inverse).  Ignored in secure mode.
unsigned apply_environment(char** env, const Options& opt, Values* out, Origin* origin);

// Defaults, files, environment; does not print.  opt.program, when null, is
// read from /proc/self/exe (or /proc/self/comm) if a [program] header needs it.
void load_with(char** env, Options opt, Values* out, Origin* origin);

// What the allocator calls once, from its first malloc, before libc may be
// fully initialised: load_with() with diagnostics on fd 2, then print()
// when `verbose` is on.  `environ_ptr` may be null; `secure` is
// getauxval(AT_SECURE) != 0.  Never allocates; never fails.  Not reentrant:
// it uses static buffers, so the caller serialises it.
void load(Values* out, Origin* origin, char** environ_ptr, bool secure);

// The effective configuration, one line per knob on `fd`:
//   btmalloc: KEY = VALUE (default|FILE:LINE|environment)
void print(const Values& v, const Origin& origin, int fd);

// Helpers shared with btmctl and the tests.
//
// The executable's base name into buf (NUL-terminated); false if unknown.
bool program_name(char* buf, size_t cap);
// Is `name` matched by the shell-style glob `pattern` (* ? [set] [!set])?
bool glob_match(const char* pattern, size_t plen, const char* name, size_t nlen);
// Parses one value of knob `id`; false with a reason in *why if it is not
// valid (a range violation is reported by in_range, not here).
bool parse_value(unsigned id, const char* s, size_t n, uint64_t* out, const char** why);
bool in_range(unsigned id, uint64_t v);
// Writes the canonical spelling of a value (the one the parser reads back)
// into buf, NUL-terminated; returns its length.
size_t format_value(unsigned id, uint64_t v, char* buf, size_t cap);
// Looks a key up (ASCII case-insensitive); kKnobCount if unknown.
unsigned find_knob(const char* key, size_t n);
// May a system file or drop-in directory with this owner and mode be used?
inline bool trusted_owner(uint32_t uid, uint32_t mode, uint32_t trusted_uid = 0) {
    return uid == trusted_uid && (mode & 022) == 0;
}

}  // namespace btm::config
