// The line parser behind parse_buffer() and load_file(), fed in pieces so a
// file is read through a small buffer.  Splitting the input anywhere gives
// the same result as feeding it whole (the fuzzer checks this).
//
// Invariant: a line is held in line_ only while it fits (kMaxLineBytes plus
// one byte for a CR); a longer one is counted and skipped, never truncated
// into a shorter, different line.
#pragma once

#include "config/config.h"

// Where the configuration code lies in libbtmalloc.so (CMakeLists.txt): the
// library maps its code in 64 KiB fault-around windows, and a process pays
// one more window for any function it runs outside the first.  Error and
// verbose paths are cold (laid out after all other code), code only some
// files need is laid out there too; the line loop that skips the comments
// of the shipped btmalloc.conf, which every process under a machine-wide
// preload reads, goes in front of the code although parse.cpp as a whole
// is laid out last.  (As core/base.h's BTM_COLD, BTM_LATE and BTM_STARTUP:
// this layer is also built into the tools without the core.)
#define BTM_CONFIG_RARE __attribute__((noinline, cold))
#define BTM_CONFIG_LATE __attribute__((section(".text.btm_unlikely")))
#define BTM_CONFIG_STARTUP __attribute__((section(".text.startup.btm")))

namespace btm::config {

// Marks every knob as coming from its default; returns `origin`.
Origin* reset_origin(Origin* origin);
// The value of BTM_<KEY> (`key` in lower case, as in knobs.def) in `env`,
// or null.
const char* find_env(char** env, const char* key);
// True if any variable in `env` starts with BTM_.
bool has_btm_variable(char** env);
// Reports why a file with this owner and mode is not trusted.  Here, with
// the parser, not in config.cpp: few processes ever print it, and the
// parser's code is laid out last in the library (CMakeLists.txt).
void report_untrusted_file(const Options& opt, const char* file, uint32_t uid, uint32_t mode);

class Parser {
public:
    Parser(const char* file, const Options& opt, Values* out, Origin* origin)
        : file_(file), opt_(opt), out_(out), origin_(origin) {}
    Parser(const Parser&) = delete;
    Parser& operator=(const Parser&) = delete;

    void feed(const char* data, size_t len);
    // Ends the input: a last line without a newline is parsed like any other.
    void finish();
    // A problem with the file as a whole (line 0) or the current line.
    void report(uint32_t line, const char* text);
    unsigned problems() const { return problems_; }

private:
    enum class Scope : uint8_t { kGlobal, kMatching, kOther, kBroken };

    void end_line();
    void parse_line(const char* s, size_t n);
    void parse_header(const char* s, size_t n);
    void parse_assignment(const char* s, size_t n);
    // The program name [program] headers are matched against, or null.
    const char* program();

    const char* file_;
    const Options& opt_;
    const char* program_ = nullptr;  // opt_.program, or find_program()'s answer once asked
    bool program_asked_ = false;
    Values* out_;
    Origin* origin_;
    uint32_t lineno_ = 1;
    Scope scope_ = Scope::kGlobal;
    bool overlong_ = false;
    unsigned problems_ = 0;
    size_t len_ = 0;
    char line_[kMaxLineBytes + 1];
};

}  // namespace btm::config
