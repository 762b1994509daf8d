// A fixed-capacity text buffer for building one diagnostic or output line
// without allocating.  Invariant: len < N, so there is always room for the
// terminating NUL; what does not fit is dropped, never written past the end.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::config {

template <size_t N>
struct Text {
    static_assert(N > 1);
    char buf[N];
    size_t len = 0;

    Text& put(char c) {
        if (len < N - 1) buf[len++] = c;
        return *this;
    }
    Text& put(const char* s, size_t n) {
        for (size_t i = 0; i < n; ++i) put(s[i]);
        return *this;
    }
    Text& put(const char* s) {
        while (*s) put(*s++);
        return *this;
    }
    Text& put_u64(uint64_t v) {
        char tmp[20];
        size_t n = 0;
        do tmp[n++] = char('0' + v % 10); while ((v /= 10) != 0);
        while (n) put(tmp[--n]);
        return *this;
    }
    // Quotes untrusted bytes: at most `limit` of them, anything outside
    // printable ASCII shown as '?', so a diagnostic never carries terminal
    // escapes or binary data.
    Text& safe(const char* s, size_t n, size_t limit = 48) {
        for (size_t i = 0; i < n && i < limit; ++i) {
            unsigned char c = static_cast<unsigned char>(s[i]);
            put(c >= 0x20 && c < 0x7f ? char(c) : '?');
        }
        if (n > limit) put("...");
        return *this;
    }
    Text& quote(const char* s, size_t n, size_t limit = 48) {
        return put('\'').safe(s, n, limit).put('\'');
    }
    const char* c_str() {
        buf[len] = '\0';
        return buf;
    }
};

}  // namespace btm::config
