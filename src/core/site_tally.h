// Live bytes and blocks by call site, summed into a fixed array the caller
// owns: the in-process report walks the boot arena and the large-block
// table with it, where nothing may allocate.  Sites beyond the array's end
// are summed in `other`.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm {

struct SiteTotal {
    uintptr_t site;
    uint64_t bytes, blocks;
};

struct SiteTally {
    SiteTotal* rows;
    size_t max;
    size_t n = 0;
    SiteTotal other{};

    void add(uintptr_t site, uint64_t bytes) {
        SiteTotal* t = &other;
        for (size_t i = 0; i < n; ++i)
            if (rows[i].site == site) t = &rows[i];
        if (t == &other && n < max) t = &(rows[n++] = SiteTotal{site, 0, 0});
        t->bytes += bytes;
        ++t->blocks;
    }
};

}  // namespace btm
