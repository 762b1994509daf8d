#include "knob_docs.h"

#include "config/config.h"

namespace btmctl {
namespace {

using namespace btm::config;

std::string value_text(unsigned id, uint64_t v) {
    char buf[32];
    format_value(id, v, buf, sizeof buf);
    return buf;
}

std::string upper(const char* s) {
    std::string out;
    for (; *s; ++s) out += (*s >= 'a' && *s <= 'z') ? char(*s - 'a' + 'A') : *s;
    return out;
}

// Text safe as roff input lines: backslashes escaped, and no line may start
// with a control character ('.' or '\'').
std::string roff_escape(const std::string& s) {
    std::string out;
    bool line_start = true;
    for (char c : s) {
        if (line_start && (c == '.' || c == '\'')) out += "\\&";
        if (c == '\\') out += "\\e";
        else out += c;
        line_start = c == '\n';
    }
    return out;
}

const char* placeholder(Kind kind) {
    switch (kind) {
        case BOOL: return "on|off";
        case MODE: return "hash|intern";
        case UINT: return "N";
        case SIZE: return "SIZE";
    }
    return "";
}

const char* kind_phrase(Kind kind) {
    switch (kind) {
        case BOOL: return "A boolean";
        case MODE: return "One of hash or intern";
        case UINT: return "A number";
        case SIZE: return "A size in bytes";
    }
    return "";
}

// Breaks text into lines of at most `width` bytes at blanks, each starting
// with `prefix` (a word longer than a line stays whole).
std::string wrap(const std::string& text, size_t width, const std::string& prefix) {
    std::string out, line;
    size_t i = 0;
    while (i < text.size()) {
        size_t j = text.find(' ', i);
        if (j == std::string::npos) j = text.size();
        std::string word = text.substr(i, j - i);
        if (!line.empty() && prefix.size() + line.size() + 1 + word.size() > width) {
            out += prefix + line + "\n";
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
        i = j + 1;
    }
    if (!line.empty()) out += prefix + line + "\n";
    return out;
}

}  // namespace

std::string sentence(const char* help) {
    std::string s = help;
    if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = char(s[0] - 'a' + 'A');
    if (!s.empty() && s.back() != '.') s += '.';
    return s;
}

std::string accepted_values(unsigned id) {
    const KnobInfo& k = kKnobs[id];
    switch (k.kind) {
        case BOOL: return "on | off";
        case MODE: return "hash | intern";
        case UINT:
        case SIZE: return value_text(id, k.lo) + ".." + value_text(id, k.hi);
    }
    return "";
}

std::string man_knob_table() {
    std::string out;
    for (unsigned i = 0; i < kKnobCount; ++i) {
        const KnobInfo& k = kKnobs[i];
        out += ".TP\n";
        out += std::string("\\fB") + k.key + "\\fR = \\fI" + placeholder(k.kind) + "\\fR\n";
        out += roff_escape(wrap(sentence(kKnobHelp[i]), 78, ""));
        std::string facts = kind_phrase(k.kind);
        if (k.kind == UINT || k.kind == SIZE)
            facts += " from " + value_text(i, k.lo) + " to " + value_text(i, k.hi);
        facts += "; default \\fB" + value_text(i, k.def) + "\\fR.";
        out += wrap(facts, 78, "");
        out += "Environment: \\fBBTM_" + upper(k.key) + "\\fR.\n";
    }
    return out;
}

std::string example_config() {
    std::string out =
        "# /etc/btmalloc.conf: runtime configuration of btmalloc, the memory\n"
        "# allocator preloaded by /etc/ld.so.preload.  See btmalloc.conf(5);\n"
        "# `btmctl config check` validates this file, `btmctl config show`\n"
        "# prints what a program gets.\n"
        "#\n"
        "# Every knob is listed below, commented out, at its compiled default.\n"
        "# Precedence, lowest first: the defaults, this file, the files\n"
        "# /etc/btmalloc.conf.d/*.conf in name order, then BTM_<KEY> environment\n"
        "# variables (ignored by setuid programs).\n"
        "#\n"
        "# Settings for some programs only go in a section, which lasts until the\n"
        "# next header; its patterns are shell globs matched against the base name\n"
        "# of the executable, and its values beat those outside any section:\n"
        "#\n"
        "#   [program python3* perl]\n"
        "#   partitions = 16\n"
        "#\n"
        "#   [program java]\n"
        "#   enabled = off\n"
        "#\n"
        "#   [global]\n"
        "#   (back to settings for every program)\n";
    for (unsigned i = 0; i < kKnobCount; ++i) {
        const KnobInfo& k = kKnobs[i];
        // Appended piece by piece: `"literal" + std::string&&` trips GCC 12's
        // -Wrestrict false positive (GCC bug 105651).
        out += '\n';
        out += wrap(sentence(kKnobHelp[i]), 78, "# ");
        out += "# ";
        out += accepted_values(i);
        out += '\n';
        out += std::string("#") + k.key + " = " + value_text(i, k.def) + "\n";
    }
    return out;
}

}  // namespace btmctl
