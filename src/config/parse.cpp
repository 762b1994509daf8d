// Values, globs and the line parser: everything that turns bytes into knob
// settings, from files or BTM_<KEY> variables.  No system calls here;
// config.cpp feeds files in.
#include <cstring>

#include "config/config.h"
#include "config/parser.h"
#include "config/text.h"

namespace btm::config {

// parse_value() saturates overflowing numbers to UINT64_MAX so they are
// reported as out of range; that only works while no maximum reaches it.
static_assert([] {
    for (const KnobInfo& k : kKnobs) {
        if (k.hi == ~uint64_t(0) || k.lo > k.hi || k.def < k.lo || k.def > k.hi) return false;
    }
    return true;
}(), "knobs.def: every default must lie in its range and no maximum may be UINT64_MAX");

namespace {

constexpr uint64_t kSaturated = ~uint64_t(0);

// The pageout signal of the first cold-tiering design is gone (btm-pageout
// reads the heap from outside now): configurations that still name it get
// one line saying so, not an "unknown key" that reads like a typo.
constexpr char kObsoleteSignalKey[] = "pageout_signal";
constexpr char kObsoleteSignal[] =
    "pageout_signal is obsolete and ignored: btm-pageout sends no signal now (the pageout knob says whether a "
    "program accepts page-out)";

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }
bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Case-insensitive comparison of s[0, n) with the lower-case word w.
bool word_is(const char* s, size_t n, const char* w) {
    size_t i = 0;
    for (; i < n; ++i)
        if (w[i] == '\0' || lower(s[i]) != w[i]) return false;
    return w[i] == '\0';
}

// Decimal digits only; saturates at kSaturated.
bool parse_decimal(const char* s, size_t n, uint64_t* out) {
    if (n == 0) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = unsigned(s[i] - '0');
        v = (v > (kSaturated - d) / 10) ? kSaturated : v * 10 + d;
    }
    *out = v;
    return true;
}

struct Word {
    char word[8];  // not a pointer: no relocation at load (config.h)
    uint64_t value;
};
constexpr Word kBoolWords[] = {{"on", 1},  {"off", 0}, {"yes", 1},  {"no", 0},
                               {"true", 1}, {"false", 0}, {"1", 1}, {"0", 0}};
constexpr Word kModeWords[] = {{"hash", 0}, {"intern", 1}};

template <size_t N>
bool parse_word(const Word (&words)[N], const char* s, size_t n, uint64_t* out) {
    for (const Word& w : words)
        if (word_is(s, n, w.word)) {
            *out = w.value;
            return true;
        }
    return false;
}

bool parse_size(const char* s, size_t n, uint64_t* out) {
    unsigned shift = 0;
    if (n > 1) {
        switch (lower(s[n - 1])) {
            case 'k': shift = 10; break;
            case 'm': shift = 20; break;
            case 'g': shift = 30; break;
            case 't': shift = 40; break;
            default: break;
        }
    }
    uint64_t v;
    if (!parse_decimal(s, shift ? n - 1 : n, &v)) return false;
    *out = (v > (kSaturated >> shift)) ? kSaturated : v << shift;
    return true;
}

const char* expected(Kind kind) {
    switch (kind) {
        case BOOL: return "expected on or off";
        case UINT: return "expected a decimal number";
        case SIZE: return "expected a size such as 4096, 512k, 64m or 1g";
        case MODE: return "expected hash or intern";
    }
    return "";
}

// "1..1024", "0..64m".
template <size_t N>
void put_range(Text<N>& t, unsigned id) {
    const KnobInfo& k = kKnobs[id];
    char a[32], b[32];
    format_value(id, k.lo, a, sizeof a);
    format_value(id, k.hi, b, sizeof b);
    t.put(a).put("..").put(b);
}

// [set] starting at p[i] == '['; returns the index just past its ']' or 0 if
// there is none.  A ']' right after '[' or '[!' is a member, as in sh.
size_t class_end(const char* p, size_t n, size_t i) {
    size_t j = i + 1;
    if (j < n && (p[j] == '!' || p[j] == '^')) ++j;
    if (j < n && p[j] == ']') ++j;
    while (j < n && p[j] != ']') ++j;
    return j < n ? j + 1 : 0;
}

bool class_match(const char* p, size_t start, size_t end, char ch) {
    unsigned char c = static_cast<unsigned char>(ch);
    size_t j = start + 1, last = end - 1;
    bool negate = p[j] == '!' || p[j] == '^';
    if (negate) ++j;
    bool hit = false;
    while (j < last) {
        unsigned char a = static_cast<unsigned char>(p[j]);
        if (j + 2 < last && p[j + 1] == '-') {
            unsigned char b = static_cast<unsigned char>(p[j + 2]);
            hit |= a <= c && c <= b;
            j += 3;
        } else {
            hit |= a == c;
            ++j;
        }
    }
    return hit != negate;
}

bool glob_valid(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (p[i] == '\\') {
            if (++i >= n) return false;
        } else if (p[i] == '[') {
            size_t e = class_end(p, n, i);
            if (e == 0) return false;
            i = e - 1;
        }
    }
    return true;
}

}  // namespace

unsigned find_knob(const char* key, size_t n) {
    for (unsigned i = 0; i < kKnobCount; ++i)
        if (word_is(key, n, kKnobs[i].key)) return i;
    return kKnobCount;
}

bool parse_value(unsigned id, const char* s, size_t n, uint64_t* out, const char** why) {
    const KnobInfo& k = kKnobs[id];
    bool ok = false;
    switch (k.kind) {
        case BOOL: ok = parse_word(kBoolWords, s, n, out); break;
        case MODE: ok = parse_word(kModeWords, s, n, out); break;
        case UINT: ok = parse_decimal(s, n, out); break;
        case SIZE: ok = parse_size(s, n, out); break;
    }
    if (!ok && why) *why = expected(k.kind);
    return ok;
}

bool in_range(unsigned id, uint64_t v) {
    const KnobInfo& k = kKnobs[id];
    return v >= k.lo && v <= k.hi;
}

size_t format_value(unsigned id, uint64_t v, char* buf, size_t cap) {
    if (cap == 0) return 0;
    Text<32> t;
    switch (kKnobs[id].kind) {
        case BOOL: t.put(v ? "on" : "off"); break;
        case MODE:
            if (v < sizeof kModeWords / sizeof kModeWords[0]) t.put(kModeWords[v].word);
            else t.put_u64(v);
            break;
        case SIZE: {
            static constexpr char kSuffix[] = {'t', 'g', 'm', 'k'};
            for (unsigned i = 0; i < 4; ++i) {
                unsigned shift = 40 - 10 * i;
                if (v != 0 && (v & ((uint64_t(1) << shift) - 1)) == 0) {
                    t.put_u64(v >> shift).put(kSuffix[i]);
                    break;
                }
            }
            if (t.len == 0) t.put_u64(v);
            break;
        }
        case UINT: t.put_u64(v); break;
    }
    size_t n = t.len < cap - 1 ? t.len : cap - 1;
    memcpy(buf, t.buf, n);
    buf[n] = '\0';
    return n;
}

bool glob_match(const char* p, size_t pn, const char* s, size_t sn) {
    // One-star backtracking: each token other than '*' matches exactly one
    // character, so retrying from the last star is enough; O(pn * sn).
    size_t pi = 0, si = 0, star_p = 0, star_s = 0;
    bool have_star = false;
    while (si < sn) {
        bool step = false;
        if (pi < pn) {
            char c = p[pi];
            if (c == '*') {
                have_star = true;
                star_p = ++pi;
                star_s = si;
                continue;
            }
            size_t e = c == '[' ? class_end(p, pn, pi) : 0;
            if (c == '?') {
                step = true, pi += 1;
            } else if (e) {
                if (class_match(p, pi, e, s[si])) step = true, pi = e;
            } else if (c == '\\' && pi + 1 < pn) {
                if (p[pi + 1] == s[si]) step = true, pi += 2;
            } else if (c == s[si]) {
                step = true, pi += 1;
            }
        }
        if (step) {
            ++si;
        } else if (have_star) {
            pi = star_p;
            si = ++star_s;
        } else {
            return false;
        }
    }
    while (pi < pn && p[pi] == '*') ++pi;
    return pi == pn;
}

void Parser::report(uint32_t line, const char* text) {
    ++problems_;
    if (opt_.max_warnings == 0 || problems_ <= opt_.max_warnings) {
        opt_.sink.report(opt_.sink.ctx, Diagnostic{file_, line, text});
    } else if (problems_ == opt_.max_warnings + 1) {
        opt_.sink.report(opt_.sink.ctx,
                         Diagnostic{file_, line, "too many problems; the rest in this file are not reported"});
    }
}

BTM_CONFIG_STARTUP void Parser::feed(const char* data, size_t len) {
    while (len) {
        const char* nl = static_cast<const char*>(memchr(data, '\n', len));
        size_t seg = nl ? size_t(nl - data) : len;
        if (!overlong_) {
            if (seg <= sizeof line_ - len_) {
                memcpy(line_ + len_, data, seg);
                len_ += seg;
            } else {
                overlong_ = true;
            }
        }
        if (!nl) return;
        end_line();
        data += seg + 1;
        len -= seg + 1;
    }
}

BTM_CONFIG_STARTUP void Parser::finish() {
    if (len_ || overlong_) end_line();
}

BTM_CONFIG_STARTUP void Parser::end_line() {
    size_t n = len_;
    if (!overlong_ && n && line_[n - 1] == '\r') --n;
    if (overlong_ || n > kMaxLineBytes) {
        Text<96> t;
        t.put("overlong line: more than ").put_u64(kMaxLineBytes).put(" bytes; ignored");
        report(lineno_, t.c_str());
    } else {
        parse_line(line_, n);
    }
    ++lineno_;
    len_ = 0;
    overlong_ = false;
}

BTM_CONFIG_STARTUP void Parser::parse_line(const char* s, size_t n) {
    while (n && is_space(*s)) ++s, --n;
    while (n && is_space(s[n - 1])) --n;
    if (n == 0 || s[0] == '#') return;
    bool header = s[0] == '[';
    bool applies = scope_ == Scope::kGlobal || scope_ == Scope::kMatching;
    // Lines of sections for other programs are not even looked at: a typo in
    // one program's section must not warn in every process on the machine.
    if (!header && !applies && !opt_.check_all) return;
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            if (header) scope_ = Scope::kBroken;
            report(lineno_, header ? "malformed section header: control characters or NUL bytes; "
                                     "lines up to the next header are ignored"
                                   : "malformed line: control characters or NUL bytes");
            return;
        }
    }
    if (header) parse_header(s, n);
    else parse_assignment(s, n);
}

const char* Parser::program() {
    if (opt_.program || !opt_.find_program) return opt_.program;
    if (!program_asked_) {
        program_ = opt_.find_program();
        program_asked_ = true;
    }
    return program_;
}

void Parser::parse_header(const char* s, size_t n) {
    for (size_t i = 1; i < n; ++i)
        if (s[i] == '#' && is_space(s[i - 1])) {
            n = i;
            break;
        }
    while (n && is_space(s[n - 1])) --n;
    bool ok = n >= 2 && s[n - 1] == ']';
    const char* body = s + 1;
    size_t bn = ok ? n - 2 : 0;
    // Split the body into words.
    const char* words[2] = {nullptr, nullptr};
    size_t word_len[2] = {0, 0};
    unsigned count = 0;
    bool patterns_ok = true, match = false;
    for (size_t i = 0; ok && i < bn;) {
        if (is_space(body[i])) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < bn && !is_space(body[j])) ++j;
        if (count < 2) words[count] = body + i, word_len[count] = j - i;
        if (count >= 1) {
            if (!glob_valid(body + i, j - i)) patterns_ok = false;
            else if (const char* prog = program())
                match |= glob_match(body + i, j - i, prog, strlen(prog));
        }
        ++count;
        i = j;
    }
    if (ok && count == 1 && word_is(words[0], word_len[0], "global")) {
        scope_ = Scope::kGlobal;
        return;
    }
    if (ok && count >= 2 && word_is(words[0], word_len[0], "program")) {
        if (patterns_ok) {
            scope_ = match ? Scope::kMatching : Scope::kOther;
            return;
        }
        scope_ = Scope::kBroken;
        report(lineno_, "malformed section header: a '[' in a pattern has no ']'; "
                        "lines up to the next header are ignored");
        return;
    }
    scope_ = Scope::kBroken;
    report(lineno_, "malformed section header: expected [program PATTERN...] or [global]; "
                    "lines up to the next header are ignored");
}

void Parser::parse_assignment(const char* s, size_t n) {
    size_t i = 0;
    while (i < n && is_key_char(s[i])) ++i;
    size_t klen = i;
    while (i < n && is_space(s[i])) ++i;
    if (klen == 0 || i >= n || s[i] != '=') {
        report(lineno_, "malformed line: expected KEY = VALUE");
        return;
    }
    ++i;
    while (i < n && is_space(s[i])) ++i;
    size_t v0 = i;
    while (i < n && !is_space(s[i])) ++i;
    size_t vlen = i - v0;
    while (i < n && is_space(s[i])) ++i;
    bool quote = !opt_.secure;

    Text<256> t;
    unsigned id = find_knob(s, klen);
    if (id == kKnobCount && word_is(s, klen, kObsoleteSignalKey)) {
        report(lineno_, kObsoleteSignal);
        return;
    }
    if (id == kKnobCount) {
        t.put("unknown key");
        if (quote) t.put(' ').quote(s, klen);
        report(lineno_, t.c_str());
        return;
    }
    const char* key = kKnobs[id].key;
    if (vlen == 0 || (i < n && s[i] != '#')) {
        t.put("bad value for ").put(key).put(vlen == 0 ? ": no value" : ": more than one word");
        report(lineno_, t.c_str());
        return;
    }
    uint64_t v = 0;
    const char* why = "";
    if (!parse_value(id, s + v0, vlen, &v, &why)) {
        t.put("bad value ");
        if (quote) t.quote(s + v0, vlen).put(' ');
        t.put("for ").put(key).put(": ").put(why);
        report(lineno_, t.c_str());
        return;
    }
    if (!in_range(id, v)) {
        t.put("out of range: ").put(key);
        if (quote) t.put(" = ").safe(s + v0, vlen);
        t.put(" (allowed ");
        put_range(t, id);
        t.put(')');
        report(lineno_, t.c_str());
        return;
    }
    if (scope_ != Scope::kGlobal && scope_ != Scope::kMatching) return;
    bool section = scope_ == Scope::kMatching;
    // The environment beats every file; a program's own section beats the
    // global lines of every file, whichever comes first.
    if (origin_->source[id] == kEnvironment) return;
    if (origin_->source[id] == kFile && origin_->in_section[id] && !section) return;
    field(*out_, id) = v;
    origin_->source[id] = kFile;
    origin_->file[id] = file_;
    origin_->line[id] = lineno_;
    origin_->in_section[id] = section;
}

unsigned parse_buffer(const char* data, size_t len, const char* file, const Options& opt,
                      Values* out, Origin* origin) {
    Origin scratch;
    if (!origin) origin = reset_origin(&scratch);
    Parser p(file, opt, out, origin);
    p.feed(data, len);
    p.finish();
    return p.problems();
}

unsigned apply_environment(char** env, const Options& opt, Values* out, Origin* origin) {
    if (opt.secure || !env || !has_btm_variable(env)) return 0;
    unsigned problems = 0;
    auto set = [&](unsigned id, const char* name, const char* value, bool invert) {
        uint64_t v = 0;
        const char* why = "";
        Text<256> t;
        if (!parse_value(id, value, strlen(value), &v, &why)) {
            t.put("bad value ").quote(value, strlen(value)).put(": ").put(why);
        } else if (!invert && !in_range(id, v)) {
            t.put("out of range: ").safe(value, strlen(value)).put(" (allowed ");
            char a[32], b[32];
            format_value(id, kKnobs[id].lo, a, sizeof a);
            format_value(id, kKnobs[id].hi, b, sizeof b);
            t.put(a).put("..").put(b).put(')');
        } else {
            field(*out, id) = invert ? !v : v;
            if (origin) {
                origin->source[id] = kEnvironment;
                origin->file[id] = nullptr;
                origin->line[id] = 0;
                origin->in_section[id] = false;
            }
            return;
        }
        ++problems;
        opt.sink.report(opt.sink.ctx, Diagnostic{name, 0, t.c_str()});
    };
    if (find_env(env, kObsoleteSignalKey)) {
        ++problems;
        opt.sink.report(opt.sink.ctx, Diagnostic{"BTM_PAGEOUT_SIGNAL", 0, kObsoleteSignal});
    }
    // The old spelling first, so that BTM_ASYNC wins when both are set.
    if (const char* v = find_env(env, "no_async")) set(k_async, "BTM_NO_ASYNC", v, true);
    for (unsigned i = 0; i < kKnobCount; ++i) {
        const char* v = find_env(env, kKnobs[i].key);
        if (!v) continue;
        Text<64> name;
        name.put("BTM_");
        for (const char* k = kKnobs[i].key; *k; ++k) name.put(*k >= 'a' && *k <= 'z' ? char(*k - 'a' + 'A') : *k);
        set(i, name.c_str(), v, false);
    }
    return problems;
}

void report_untrusted_file(const Options& opt, const char* file, uint32_t uid, uint32_t mode) {
    Text<128> t;
    if (uid != opt.trusted_uid) {
        t.put("owned by uid ").put_u64(uid).put(", not ");
        if (opt.trusted_uid == 0) t.put("root");
        else t.put("uid ").put_u64(opt.trusted_uid);
    } else {
        t.put("writable by group or others (mode 0");
        for (int shift = 6; shift >= 0; shift -= 3) t.put(char('0' + ((mode >> shift) & 7)));
        t.put(')');
    }
    opt.sink.report(opt.sink.ctx, Diagnostic{file, 0, t.put("; ignored").c_str()});
}

}  // namespace btm::config
