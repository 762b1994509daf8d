#include "site_profile.h"

#include <limits.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

namespace btm_heap {
namespace {

bool profile_ok(const Profile& p) {
    return p.magic == btm::introspect::kProfileMagic && p.version == btm::introspect::kProfileVersion &&
           p.size == sizeof(Profile) && p.npart >= 1 && p.npart <= (1u << 16) && p.class_bits >= 1 &&
           p.class_bits <= 8 && p.nclasses >= 1 && p.nclasses <= (1u << p.class_bits) &&
           p.nclasses <= btm::introspect::kProfileClasses && p.central_stride <= 4096 &&
           uint64_t(p.central_out_bytes) + 8 <= p.central_stride;
}

// Reads 8-byte words at `addrs` into `out`, IOV_MAX of them per call.
bool read_words(pid_t pid, const std::vector<uint64_t>& addrs, std::vector<uint64_t>* out) {
    out->assign(addrs.size(), 0);
    std::vector<iovec> local, remote;
    for (size_t i = 0; i < addrs.size(); i += IOV_MAX) {
        size_t n = std::min<size_t>(IOV_MAX, addrs.size() - i);
        local.resize(n);
        remote.resize(n);
        for (size_t k = 0; k < n; ++k) {
            local[k] = {&(*out)[i + k], 8};
            remote[k] = {reinterpret_cast<void*>(addrs[i + k]), 8};
        }
        if (process_vm_readv(pid, local.data(), n, remote.data(), n, 0) != ssize_t(n * 8)) return false;
    }
    return true;
}

// The live blocks of the boot arena by call site.
bool boot_sites(pid_t pid, const Profile& p, std::vector<SiteUsage>* out) {
    if (!p.boot_ready) return true;
    if (p.boot_granule < 16 || p.boot_span_bytes != 64 * p.boot_granule || p.boot_spans > (1u << 16) ||
        p.boot_marks_stride != 16)
        return false;
    uint64_t top = 0;
    if (!read_memory(pid, p.boot_top, &top, 8)) return false;
    uint64_t limit = uint64_t(p.boot_spans) * p.boot_span_bytes;
    if (top > limit) return false;
    if (top == 0) return true;
    std::vector<uint64_t> marks(size_t(p.boot_spans) * 2);
    std::vector<char> bytes(top);
    if (!read_memory(pid, p.boot_marks, marks.data(), marks.size() * 8) ||
        !read_memory(pid, p.boot_bytes, bytes.data(), bytes.size()))
        return false;
    std::map<uint64_t, SiteUsage> by_site;
    for (uint64_t s = 0; s * p.boot_span_bytes < top; ++s) {
        size_t at = size_t(p.boot_spans - 1 - s) * 2;
        for (uint64_t live = marks[at] & ~marks[at + 1]; live; live &= live - 1) {
            uint64_t off = s * p.boot_span_bytes + uint64_t(__builtin_ctzll(live)) * p.boot_granule;
            if (off < 16 || off >= top) continue;  // torn: a block being made
            uint64_t word, site;
            std::memcpy(&word, bytes.data() + off - 16, 8);
            std::memcpy(&site, bytes.data() + off - 8, 8);
            SiteUsage& u = by_site[site];
            u.partition = kStartupArena;
            u.site = site;
            u.bytes += std::min<uint64_t>(word & 0xffffffff, top - off);
            ++u.blocks;
        }
    }
    for (auto& [site, u] : by_site) out->push_back(u);
    return true;
}

// The large blocks by call site, appended to `out`.
bool large_sites(pid_t pid, const Profile& p, uint32_t page_shift, std::vector<SiteUsage>* out) {
    std::vector<LargeBlock> blocks;
    if (!read_large(pid, p, page_shift, &blocks)) return false;
    std::map<uint64_t, SiteUsage> by_site;
    for (const LargeBlock& b : blocks) {
        SiteUsage& u = by_site[b.site];
        u.partition = kLargeBlocks;
        u.site = b.site;
        u.bytes += b.size;
        ++u.blocks;
    }
    for (auto& [site, u] : by_site) out->push_back(u);
    return true;
}

}  // namespace

bool read_sites(pid_t pid, const Located& loc, std::vector<SiteUsage>* out, std::string* why, bool* gone) {
    out->clear();
    *gone = false;
    auto fail = [&](const std::string& what) {
        *gone = errno == ESRCH;
        *why = *gone ? "the process exited during the read" : what;
        return false;
    };
    if (!loc.profile_addr) {
        *why = "its btmalloc predates the heap profile section (" + std::string(btm::introspect::kProfileSymbol) +
               "): restart it on a newer library";
        return false;
    }
    Profile p;
    if (!read_memory(pid, loc.profile_addr, &p, sizeof p))
        return fail("cannot read its profile section (" + std::string(std::strerror(errno)) + ")");
    if (p.magic == btm::introspect::kProfileMagic && p.version == btm::introspect::kProfileVersion &&
        p.size == sizeof(Profile) && !p.ready) {
        // Still in its start-up phase: no heap tables yet, only the arena
        // and large blocks.
        if (!boot_sites(pid, p, out)) return fail("cannot read its start-up arena");
        if (!large_sites(pid, p, loc.d.page_shift, out)) return fail("cannot read its large-block table");
        return true;
    }
    if (!profile_ok(p)) {
        *why = "its profile section is of another version (" + std::to_string(p.version) +
               ") or does not add up: btmctl is older than the library?";
        return false;
    }
    std::vector<uint64_t> used(p.npart), site(p.npart);
    std::vector<uint8_t> shared(p.npart);
    if (!read_memory(pid, p.used, used.data(), used.size() * 8) ||
        !read_memory(pid, p.site, site.data(), site.size() * 8) ||
        !read_memory(pid, p.shared, shared.data(), shared.size()))
        return fail("cannot read its partition tables (" + std::string(std::strerror(errno)) + ")");
    std::vector<uint64_t> addrs;
    std::vector<uint32_t> bins;
    for (uint32_t part = 0; part < p.npart; ++part)
        for (uint64_t bits = used[part]; bits; bits &= bits - 1) {
            uint32_t cls = uint32_t(__builtin_ctzll(bits));
            if (cls >= p.nclasses) continue;
            uint32_t bin = (part << p.class_bits) | cls;
            bins.push_back(bin);
            addrs.push_back(p.central + uint64_t(bin) * p.central_stride + p.central_out_bytes);
        }
    std::vector<uint64_t> bytes;
    if (!read_words(pid, addrs, &bytes))
        return fail("cannot read its size-class counters (" + std::string(std::strerror(errno)) + ")");
    std::vector<SiteUsage> per(p.npart);
    for (size_t i = 0; i < bins.size(); ++i) {
        uint32_t part = bins[i] >> p.class_bits, size = p.class_size[bins[i] & ((1u << p.class_bits) - 1)];
        per[part].bytes += bytes[i];
        if (size) per[part].blocks += bytes[i] / size;
    }
    for (uint32_t part = 0; part < p.npart; ++part) {
        if (!per[part].bytes) continue;
        per[part].partition = part;
        per[part].site = site[part];
        per[part].shared = shared[part] != 0;
        out->push_back(per[part]);
    }
    if (!boot_sites(pid, p, out)) return fail("cannot read its start-up arena");
    if (!large_sites(pid, p, loc.d.page_shift, out)) return fail("cannot read its large-block table");
    return true;
}

bool read_totals(pid_t pid, const Located& loc, HeapTotals* out, std::string* why, bool* gone) {
    *out = {};
    std::vector<SiteUsage> sites;
    if (!read_sites(pid, loc, &sites, why, gone)) return false;
    // Large blocks are mappings of their own, committed whole.
    for (const SiteUsage& s : sites) {
        out->live += s.bytes;
        if (s.partition == kLargeBlocks) out->committed += s.bytes;
    }
    if (!loc.d.ready) return true;
    Profile p;
    uint32_t nchunks = 0;
    if (!read_memory(pid, loc.profile_addr, &p, sizeof p) || !read_memory(pid, p.foreign_frees, &out->foreign_frees, 8) ||
        !read_memory(pid, p.invalid_frees, &out->invalid_frees, 8) ||
        !read_memory(pid, loc.d.nchunks, &nchunks, sizeof nchunks)) {
        *gone = errno == ESRCH;
        *why = *gone ? "the process exited during the read" : "cannot read its heap counters";
        return false;
    }
    if (nchunks > loc.d.max_chunks) {
        *why = "its chunk count is out of range";
        return false;
    }
    out->committed += uint64_t(nchunks) * loc.d.chunk_size;
    return true;
}

ModuleOffset module_of(const std::vector<Mapping>& maps, uint64_t addr) {
    for (const Mapping& m : maps)
        if (addr >= m.start && addr < m.end) return {m.path, addr - m.start + m.offset};
    return {};
}

}  // namespace btm_heap
