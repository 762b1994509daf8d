#include "untrusted_text.h"

#include <cstdint>
#include <cstdio>

namespace btm_tools {
namespace {

// The length of the UTF-8 sequence at s[i] and its code point in *cp, or 0
// if it is not valid (stray continuation bytes, truncated sequences,
// overlong forms, surrogates, code points past U+10FFFF).
size_t decode(std::string_view s, size_t i, uint32_t* cp) {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char b = byte(i);
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    uint32_t min;
    if ((b & 0xe0) == 0xc0) len = 2, *cp = b & 0x1f, min = 0x80;
    else if ((b & 0xf0) == 0xe0) len = 3, *cp = b & 0x0f, min = 0x800;
    else if ((b & 0xf8) == 0xf0) len = 4, *cp = b & 0x07, min = 0x10000;
    else return 0;
    if (i + len > s.size()) return 0;
    for (size_t k = 1; k < len; ++k) {
        if ((byte(i + k) & 0xc0) != 0x80) return 0;
        *cp = (*cp << 6) | (byte(i + k) & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
    return len;
}

bool is_control(uint32_t cp) { return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f); }

void put_hex(std::string* out, const char* format, unsigned value) {
    char buf[8];
    std::snprintf(buf, sizeof buf, format, value);
    *out += buf;
}

}  // namespace

std::string printable(std::string_view bytes) {
    std::string out;
    for (size_t i = 0; i < bytes.size();) {
        uint32_t cp = 0;
        size_t len = decode(bytes, i, &cp);
        if (len == 0 || is_control(cp)) {
            size_t n = len ? len : 1;
            for (size_t k = 0; k < n; ++k) put_hex(&out, "\\x%02x", static_cast<unsigned char>(bytes[i + k]));
            i += n;
            continue;
        }
        if (cp == '\\') out += '\\';
        out.append(bytes.substr(i, len));
        i += len;
    }
    return out;
}

std::string json_string(std::string_view bytes) {
    std::string out = "\"";
    for (size_t i = 0; i < bytes.size();) {
        uint32_t cp = 0;
        size_t len = decode(bytes, i, &cp);
        if (len == 0) {
            out += "\xef\xbf\xbd";  // U+FFFD
            ++i;
            continue;
        }
        if (cp == '"' || cp == '\\') out += '\\';
        if (is_control(cp)) put_hex(&out, "\\u%04x", cp);
        else out.append(bytes.substr(i, len));
        i += len;
    }
    return out + "\"";
}

}  // namespace btm_tools
