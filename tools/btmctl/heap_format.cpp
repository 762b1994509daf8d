#include "heap_format.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "site_profile.h"
#include "untrusted_text.h"

namespace btmctl::heap {
namespace {

std::string share(uint64_t bytes, uint64_t total) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f%%", total ? 100.0 * double(bytes) / double(total) : 0.0);
    return buf;
}

// Where a site's blocks are: "slabs" of its partition, the "start-up"
// arena, or "large" blocks (each its own mapping).
const char* kind(const Site& s) {
    if (s.partition == btm_heap::kStartupArena) return "start-up";
    return s.partition == btm_heap::kLargeBlocks ? "large" : "slabs";
}

std::string site_label(const Site& s) {
    if (s.partition == btm_heap::kStartupArena) return btm_heap::describe(s.name) + "  [start-up arena]";
    if (s.partition == btm_heap::kLargeBlocks) return btm_heap::describe(s.name) + "  [large blocks]";
    return btm_heap::describe(s.name) + (s.shared ? "  [partition " + std::to_string(s.partition) + " shared]" : "");
}

}  // namespace

uint64_t total_bytes(const Snapshot& s) {
    uint64_t t = 0;
    for (const Site& x : s.sites) t += x.bytes;
    return t;
}

std::string json_string(const std::string& s) { return btm_tools::json_string(s); }

void print_table(std::ostream& out, const Snapshot& s, size_t top) {
    uint64_t total = total_bytes(s);
    out << "pid " << s.pid << " (" << btm_tools::printable(s.comm) << ") unit " << btm_tools::printable(s.unit) << ": " << total << " live bytes at "
        << s.sites.size() << " call sites (read in " << s.read_ms << " ms; the process was not stopped)\n";
    char line[96];
    std::snprintf(line, sizeof line, "%14s %10s %6s  %s\n", "BYTES", "BLOCKS", "SHARE", "CALL SITE");
    out << line;
    for (size_t i = 0; i < s.sites.size() && i < top; ++i) {
        const Site& x = s.sites[i];
        std::snprintf(line, sizeof line, "%14llu %10llu %6s  ", (unsigned long long)x.bytes,
                      (unsigned long long)x.blocks, share(x.bytes, total).c_str());
        out << line << btm_tools::printable(site_label(x)) << '\n';
    }
    if (s.sites.size() > top) out << "(" << s.sites.size() - top << " more call sites; --top N shows more)\n";
}

void print_json(std::ostream& out, const std::vector<Snapshot>& all, size_t top) {
    out << "[";
    for (size_t k = 0; k < all.size(); ++k) {
        const Snapshot& s = all[k];
        uint64_t total = total_bytes(s);
        out << (k ? ",\n " : "\n ") << "{\"pid\": " << s.pid << ", \"comm\": " << json_string(s.comm)
            << ", \"unit\": " << json_string(s.unit) << ", \"live_bytes\": " << total << ", \"read_ms\": " << s.read_ms
            << ", \"sites\": [";
        for (size_t i = 0; i < s.sites.size() && i < top; ++i) {
            const Site& x = s.sites[i];
            out << (i ? ",\n  " : "\n  ") << "{\"bytes\": " << x.bytes << ", \"blocks\": " << x.blocks
                << ", \"share\": " << (total ? double(x.bytes) / double(total) : 0.0)
                << ", \"address\": " << x.address << ", \"module\": " << json_string(x.name.module)
                << ", \"module_offset\": " << x.name.module_offset
                << ", \"function\": " << json_string(x.name.function)
                << ", \"function_offset\": " << x.name.function_offset << ", \"file\": " << json_string(x.name.file)
                << ", \"line\": " << x.name.line << ", \"kind\": \"" << kind(x) << "\", \"partition\": " << x.partition
                << ", \"partition_shared\": " << (x.shared ? "true" : "false") << "}";
        }
        out << "]}";
    }
    out << "\n]\n";
}

std::vector<Growth> growth(const Snapshot& before, const Snapshot& after, double seconds) {
    // A site is its partition and return address: a partition whose first
    // site changed (after a fork, say) is another site.
    std::map<std::pair<uint32_t, uint64_t>, uint64_t> was;
    for (const Site& x : before.sites) was[{x.partition, x.address}] = x.bytes;
    std::vector<Growth> out;
    for (const Site& x : after.sites) {
        auto it = was.find({x.partition, x.address});
        int64_t delta = int64_t(x.bytes) - int64_t(it == was.end() ? 0 : it->second);
        if (delta > 0) out.push_back({x, delta, seconds > 0 ? double(delta) / seconds : 0});
    }
    std::stable_sort(out.begin(), out.end(), [](const Growth& a, const Growth& b) { return a.delta > b.delta; });
    return out;
}

void print_growth(std::ostream& out, const Snapshot& after, const std::vector<Growth>& g, double seconds,
                  size_t top) {
    out << "pid " << after.pid << " (" << btm_tools::printable(after.comm) << ") unit "
        << btm_tools::printable(after.unit) << ": " << g.size()
        << " call sites grew in " << seconds << " s (" << total_bytes(after) << " live bytes now)\n";
    char line[112];
    std::snprintf(line, sizeof line, "%14s %14s %14s  %s\n", "BYTES_PER_S", "GROWTH", "BYTES_NOW", "CALL SITE");
    out << line;
    for (size_t i = 0; i < g.size() && i < top; ++i) {
        std::snprintf(line, sizeof line, "%14.0f %14lld %14llu  ", g[i].rate, (long long)g[i].delta,
                      (unsigned long long)g[i].site.bytes);
        out << line << btm_tools::printable(site_label(g[i].site)) << '\n';
    }
}

void print_growth_json(std::ostream& out, const Snapshot& after, const std::vector<Growth>& g, double seconds,
                       size_t top) {
    out << "{\"pid\": " << after.pid << ", \"comm\": " << json_string(after.comm) << ", \"unit\": "
        << json_string(after.unit) << ", \"seconds\": " << seconds << ", \"growing\": [";
    for (size_t i = 0; i < g.size() && i < top; ++i) {
        const Site& x = g[i].site;
        out << (i ? ",\n  " : "\n  ") << "{\"bytes_per_second\": " << g[i].rate << ", \"growth\": " << g[i].delta
            << ", \"bytes\": " << x.bytes << ", \"module\": " << json_string(x.name.module)
            << ", \"module_offset\": " << x.name.module_offset << ", \"function\": " << json_string(x.name.function)
            << ", \"file\": " << json_string(x.name.file) << ", \"line\": " << x.name.line << "}";
    }
    out << "]}\n";
}

void print_folded(std::ostream& out, const Snapshot& s) {
    // A frame may hold neither the separator nor a line break; spaces are
    // fine (the count is after the last one).
    auto frame = [](std::string f) {
        for (char& c : f)
            if (c == ';' || c == '\n' || c == '\r') c = '_';
        return f;
    };
    for (const Site& x : s.sites) {
        char off[24];
        std::snprintf(off, sizeof off, "+0x%llx", (unsigned long long)x.name.module_offset);
        std::string module = x.name.module.empty() ? "[unknown]" : x.name.module;
        std::string function = x.name.function.empty() ? module + off : x.name.function;
        out << frame(module) << ';' << frame(function) << ' ' << x.bytes << '\n';
    }
}

}  // namespace btmctl::heap
