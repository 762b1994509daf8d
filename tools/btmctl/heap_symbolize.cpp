// `btmctl heap --symbolize FILE`: names the call sites of a saved in-process
// report (malloc_stats(), btm_heap_profile()), whose site lines read
// "PART BYTES MODULE+0xOFF BUILD-ID PATH" (PART a partition's number, or
// "start-up" or "large" for blocks outside the slabs).  Other lines are
// copied.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <regex>

#include "heap_format.h"
#include "symbolizer.h"

namespace btmctl::heap {

int symbolize_report(const std::string& file, std::ostream& out, std::ostream& err) {
    std::ifstream in(file);
    if (!in) {
        err << "btmctl: heap: cannot read " << file << '\n';
        return 1;
    }
    static const std::regex kSite(R"(^(\d+|start-up|large) (\d+) \S+\+0x([0-9a-f]+) ([0-9a-f]+|-) (/.*)$)");
    btm_heap::Symbolizer names;
    struct Row {
        uint64_t bytes;
        std::string name;
    };
    std::vector<Row> rows;
    std::string line;
    size_t sites = 0;
    while (std::getline(in, line)) {
        std::smatch m;
        if (!std::regex_match(line, m, kSite)) {
            if (line.rfind("part ", 0) != 0) out << line << '\n';
            continue;
        }
        ++sites;
        uint64_t bytes = std::stoull(m[2]);
        if (!bytes) continue;
        btm_heap::SiteName n = names.name_in_module(m[5], m[4], std::stoull(m[3], nullptr, 16));
        rows.push_back({bytes, btm_heap::describe(n)});
    }
    if (!sites) {
        err << "btmctl: heap: " << file << " has no site lines with build-ids (a btmalloc report: malloc_stats(), "
            << "btm_heap_profile())\n";
        return 1;
    }
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.bytes > b.bytes; });
    char buf[32];
    std::snprintf(buf, sizeof buf, "%14s  ", "BYTES");
    out << buf << "CALL SITE\n";
    for (const Row& r : rows) {
        std::snprintf(buf, sizeof buf, "%14llu  ", (unsigned long long)r.bytes);
        out << buf << r.name << '\n';
    }
    return 0;
}

}  // namespace btmctl::heap
