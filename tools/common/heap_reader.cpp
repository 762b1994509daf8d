#include "heap_reader.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace btm_heap {

bool parse_maps(pid_t pid, std::vector<Mapping>* out, int* err) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/maps");
    if (!f) {
        *err = errno;
        return false;
    }
    std::string line;
    bool any = false;
    while (std::getline(f, line)) {
        any = true;
        std::istringstream in(line);
        std::string range, perms, dev;
        Mapping m;
        unsigned long long off = 0, ino = 0;
        if (!(in >> range >> perms >> std::hex >> off >> dev >> std::dec >> ino)) continue;
        auto dash = range.find('-');
        auto colon = dev.find(':');
        if (dash == std::string::npos || colon == std::string::npos || ino == 0) continue;
        m.start = std::stoull(range.substr(0, dash), nullptr, 16);
        m.end = std::stoull(range.substr(dash + 1), nullptr, 16);
        m.offset = off;
        m.dev = makedev(unsigned(std::stoul(dev.substr(0, colon), nullptr, 16)),
                        unsigned(std::stoul(dev.substr(colon + 1), nullptr, 16)));
        m.ino = ino_t(ino);
        std::getline(in >> std::ws, m.path);
        if (m.path.empty() || m.path[0] != '/') continue;
        out->push_back(std::move(m));
    }
    // A readable but empty maps file: a kernel thread or a zombie.
    *err = any ? 0 : ESRCH;
    return any;
}

namespace {

// What a library file's dynamic symbol table says about btmalloc.
struct FileInfo {
    bool descriptor = false;   // exports btm_introspect_v1
    bool old_btmalloc = false; // exports btm_pageout_cold but not the descriptor
    uint64_t file_offset = 0;  // of the descriptor in the file
    bool profile = false;      // exports btm_profile_v1 (in a loaded segment)
    uint64_t profile_offset = 0;
};

bool pread_all(int fd, void* buf, size_t n, uint64_t off) {
    char* p = static_cast<char*>(buf);
    while (n) {
        ssize_t r = pread(fd, p, n, off_t(off));
        if (r <= 0) return false;
        p += r, n -= size_t(r), off += uint64_t(r);
    }
    return true;
}

// Reads the ELF file's .dynsym (64-bit, this machine's byte order only).
// A file that is not ELF, or is malformed, exports nothing.
FileInfo inspect_elf(int fd) {
    FileInfo info;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return info;
    uint64_t size = uint64_t(st.st_size);
    Elf64_Ehdr eh;
    if (size < sizeof eh || !pread_all(fd, &eh, sizeof eh, 0)) return info;
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shnum > 4096 ||
        eh.e_shoff > size || size - eh.e_shoff < uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr))
        return info;
    std::vector<Elf64_Shdr> sh(eh.e_shnum);
    if (!pread_all(fd, sh.data(), sh.size() * sizeof(Elf64_Shdr), eh.e_shoff)) return info;
    constexpr uint64_t kMaxTable = 64u << 20;
    auto in_file = [&](const Elf64_Shdr& s) {
        return s.sh_offset <= size && s.sh_size <= size - s.sh_offset && s.sh_size <= kMaxTable;
    };
    for (const Elf64_Shdr& sym : sh) {
        if (sym.sh_type != SHT_DYNSYM || sym.sh_link >= sh.size() || sym.sh_entsize != sizeof(Elf64_Sym)) continue;
        const Elf64_Shdr& str = sh[sym.sh_link];
        if (!in_file(sym) || !in_file(str)) continue;
        std::vector<Elf64_Sym> syms(sym.sh_size / sizeof(Elf64_Sym));
        std::string names(str.sh_size, '\0');
        if (!pread_all(fd, syms.data(), syms.size() * sizeof(Elf64_Sym), sym.sh_offset) ||
            !pread_all(fd, names.data(), names.size(), str.sh_offset))
            return info;
        uint64_t value = 0, profile = 0;
        bool pageout_cold = false;
        for (const Elf64_Sym& s : syms) {
            if (s.st_name >= names.size() || s.st_shndx == SHN_UNDEF) continue;
            const char* name = names.c_str() + s.st_name;
            bool object = ELF64_ST_TYPE(s.st_info) == STT_OBJECT;
            if (std::strcmp(name, btm::introspect::kSymbol) == 0 && object && s.st_size >= sizeof(Descriptor))
                value = s.st_value;
            else if (std::strcmp(name, btm::introspect::kProfileSymbol) == 0 && object && s.st_size >= sizeof(Profile))
                profile = s.st_value;
            else if (std::strcmp(name, "btm_pageout_cold") == 0)
                pageout_cold = true;
        }
        if (value == 0) {
            info.old_btmalloc = pageout_cold;
            return info;
        }
        // A symbol's address to its place in the file, through the segment
        // that holds it.
        if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 256 || eh.e_phoff > size ||
            size - eh.e_phoff < uint64_t(eh.e_phnum) * sizeof(Elf64_Phdr))
            return info;
        std::vector<Elf64_Phdr> ph(eh.e_phnum);
        if (!pread_all(fd, ph.data(), ph.size() * sizeof(Elf64_Phdr), eh.e_phoff)) return info;
        auto file_offset = [&](uint64_t vaddr, uint64_t len, uint64_t* out) {
            for (const Elf64_Phdr& p : ph) {
                if (p.p_type != PT_LOAD || vaddr < p.p_vaddr || vaddr - p.p_vaddr + len > p.p_filesz) continue;
                *out = p.p_offset + (vaddr - p.p_vaddr);
                return true;
            }
            return false;
        };
        info.descriptor = file_offset(value, sizeof(Descriptor), &info.file_offset);
        info.profile = profile && file_offset(profile, sizeof(Profile), &info.profile_offset);
        return info;
    }
    return info;
}

// Opens the file behind a mapping: through map_files (the very file that
// is mapped, even if deleted or replaced on disk since), else by its path
// under the process's root, accepted only if it is still the same inode.
int open_mapped(pid_t pid, const Mapping& m) {
    char name[96];
    std::snprintf(name, sizeof name, "/proc/%d/map_files/%llx-%llx", int(pid), (unsigned long long)m.start,
                  (unsigned long long)m.end);
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fd = open(("/proc/" + std::to_string(pid) + "/root" + m.path).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != m.dev || st.st_ino != m.ino) {
        close(fd);
        return -1;
    }
    return fd;
}

// Files already inspected in this run, by device and inode.
std::map<std::pair<dev_t, ino_t>, FileInfo>& file_cache() {
    static std::map<std::pair<dev_t, ino_t>, FileInfo> cache;
    return cache;
}

std::string errno_text(int e) { return std::strerror(e); }

template <class T>
bool read_value(pid_t pid, uint64_t addr, T* v) {
    return read_memory(pid, addr, v, sizeof *v);
}

// The layout facts this reader relies on, checked before any table is read:
// every field it reads lies inside its stride, and the counts are bounded.
bool layout_ok(const Descriptor& d) {
    auto fits = [](uint32_t off, uint32_t width, uint64_t stride) { return uint64_t(off) + width <= stride; };
    uint64_t header_end = uint64_t(d.chunk_slabs) + uint64_t(d.max_pages_per_chunk) * d.slab_stride;
    return d.page_shift >= 12 && d.page_shift <= 16 && d.chunk_size >= (uint64_t(1) << d.page_shift) &&
           d.chunk_size <= (uint64_t(1) << 30) && (d.chunk_size & (d.chunk_size - 1)) == 0 &&
           d.max_regions >= 1 && d.max_regions <= 64 && d.max_chunks <= (1u << 24) &&
           d.group_entries >= 1 && d.group_entries <= 4096 && d.entry_stride >= 8 &&
           fits(d.region_base, 8, d.region_stride) && fits(d.region_size, 8, d.region_stride) &&
           fits(d.region_used, 8, d.region_stride) && d.region_stride <= 4096 &&
           fits(d.entry_chunk, 8, d.entry_stride) &&
           uint64_t(d.group_entries_offset) + uint64_t(d.group_entries) * d.entry_stride <= d.group_stride &&
           d.group_stride <= (1u << 20) && d.max_pages_per_chunk <= 65536 &&
           (d.chunk_size >> d.page_shift) <= d.max_pages_per_chunk &&
           fits(d.chunk_magic_at, 8, d.chunk_pagemap) && fits(d.chunk_npages, 4, d.chunk_pagemap) &&
           fits(d.chunk_first_page, 4, d.chunk_pagemap) && fits(d.chunk_released, 1, d.chunk_pagemap) &&
           uint64_t(d.chunk_pagemap) + uint64_t(d.max_pages_per_chunk) * 8 <= d.chunk_slabs &&
           header_end <= d.chunk_size && fits(d.slab_npages, 2, d.slab_stride) &&
           fits(d.slab_epoch, 4, d.slab_stride) && d.pagemap_offset_shift < 64;
}

bool large_layout_ok(const Profile& p) {
    auto fits = [&](uint32_t off, uint32_t width) { return uint64_t(off) + width <= p.large_stride; };
    return p.large_stride >= 16 && p.large_stride <= 256 && fits(p.large_addr, 8) && fits(p.large_size, 8) &&
           fits(p.large_site, 8) && fits(p.large_epoch, 4) && p.large_freed != 0 && p.large_freed < 4096;
}

uint64_t timens_monotonic_offset(const std::string& proc_dir) {
    std::ifstream f(proc_dir + "/timens_offsets");
    std::string clock;
    long long sec = 0, nsec = 0;
    while (f >> clock >> sec >> nsec)
        if (clock == "monotonic") return uint64_t(sec);
    return 0;
}

// The process's CLOCK_MONOTONIC_COARSE seconds now, and the second it
// started on the same clock.
void process_clock(pid_t pid, uint32_t* now, uint32_t* started) {
    timespec mono{}, boot{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &mono);
    clock_gettime(CLOCK_BOOTTIME, &boot);
    std::string dir = "/proc/" + std::to_string(pid);
    uint64_t here = uint64_t(mono.tv_sec) - timens_monotonic_offset("/proc/self");
    *now = uint32_t(here + timens_monotonic_offset(dir));
    // Field 22 of stat: start time in clock ticks since boot (this reader's view).
    std::ifstream f(dir + "/stat");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close_paren = text.rfind(')');
    uint64_t start_ticks = 0;
    if (close_paren != std::string::npos) {
        std::istringstream in(text.substr(close_paren + 2));
        std::string field;
        for (int i = 3; i <= 22 && in >> field; ++i)
            if (i == 22) start_ticks = std::strtoull(field.c_str(), nullptr, 10);
    }
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t age = uint64_t(boot.tv_sec) - (hz > 0 ? start_ticks / uint64_t(hz) : 0);
    *started = *now - uint32_t(age);
}

}  // namespace

bool read_memory(pid_t pid, uint64_t addr, void* buf, size_t n) {
    iovec local{buf, n};
    iovec remote{reinterpret_cast<void*>(addr), n};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) == ssize_t(n);
}

Found locate(pid_t pid, Located* out, std::string* why) {
    std::vector<Mapping> maps;
    int err = 0;
    if (!parse_maps(pid, &maps, &err)) {
        if (err == ENOENT || err == ESRCH) return Found::kGone;
        *why = "cannot read its memory map (" + errno_text(err) + "): another user's process without privilege";
        return Found::kNoAccess;
    }
    bool old = false;
    std::string named, unopened;  // mapped files named like the library: judged by content, never by name
    for (const Mapping& m : maps) {
        auto key = std::make_pair(m.dev, m.ino);
        auto it = file_cache().find(key);
        std::string base = m.path.substr(m.path.rfind('/') + 1);
        bool like = base.rfind("libbtmalloc", 0) == 0;
        if (like && named.empty()) named = base;
        if (it == file_cache().end()) {
            int fd = open_mapped(pid, m);
            if (fd < 0) {  // cannot tell; a later mapping of the file may open
                if (like) unopened = m.path;
                continue;
            }
            it = file_cache().emplace(key, inspect_elf(fd)).first;
            close(fd);
        }
        const FileInfo& info = it->second;
        old = old || info.old_btmalloc;
        if (!info.descriptor) continue;
        // The mapping of this file that holds the descriptor's bytes.
        for (const Mapping& w : maps) {
            if (w.dev != m.dev || w.ino != m.ino || info.file_offset < w.offset ||
                info.file_offset - w.offset + sizeof(Descriptor) > w.end - w.start)
                continue;
            out->addr = w.start + (info.file_offset - w.offset);
            out->library = m.path;
            out->profile_addr = 0;
            for (const Mapping& q : maps)
                if (info.profile && q.dev == m.dev && q.ino == m.ino && info.profile_offset >= q.offset &&
                    info.profile_offset - q.offset + sizeof(Profile) <= q.end - q.start)
                    out->profile_addr = q.start + (info.profile_offset - q.offset);
            if (!read_value(pid, out->addr, &out->d)) {
                if (errno == ESRCH) return Found::kGone;
                *why = "cannot read its memory (" + errno_text(errno) + "): needs root or ptrace access";
                return Found::kNoAccess;
            }
            if (out->d.magic != btm::introspect::kMagic || out->d.version != btm::introspect::kVersion ||
                out->d.size != sizeof(Descriptor)) {
                *why = "btmalloc descriptor of an unknown version (" + std::to_string(out->d.version) +
                       "): this btm-pageout is older than the library";
                return Found::kUnknownVersion;
            }
            Profile p;
            out->large = read_profile(pid, *out, &p) && p.boot_ready;
            return Found::kYes;
        }
    }
    if (old) {
        *why = "btmalloc too old for safe pageout (it predates the introspection descriptor): restart it";
        return Found::kTooOld;
    }
    if (!unopened.empty()) {
        *why = "cannot open " + unopened +
               " as mapped (replaced since it started? /proc/PID/map_files needs root or CAP_CHECKPOINT_RESTORE)";
        return Found::kNoAccess;
    }
    if (!named.empty()) *why = "maps " + named + ", but no file it maps exports btmalloc's descriptor: not btmalloc";
    return Found::kNotBtmalloc;
}

bool read_profile(pid_t pid, const Located& loc, Profile* p) {
    return loc.profile_addr && read_memory(pid, loc.profile_addr, p, sizeof *p) &&
           p->magic == btm::introspect::kProfileMagic && p->version == btm::introspect::kProfileVersion &&
           p->size == sizeof(Profile);
}

bool read_large(pid_t pid, const Profile& p, uint32_t page_shift, std::vector<LargeBlock>* out) {
    out->clear();
    if (!p.boot_ready) return true;
    if (!large_layout_ok(p) || page_shift < 12 || page_shift > 16) return false;
    const uint64_t page_mask = (uint64_t(1) << page_shift) - 1;
    // The table moves when it grows (the old one is unmapped): read the
    // pointer and the size around it, and again if either changed.
    for (int attempt = 0; attempt < 8; ++attempt) {
        uint64_t table = 0, capacity = 0, table2 = 0, capacity2 = 0;
        if (!read_memory(pid, p.large_table, &table, 8) || !read_memory(pid, p.large_capacity, &capacity, 8))
            return false;
        if (!table) return true;  // no large block yet
        // A power of two, and at most 64 MiB to read: a hostile count must
        // not make the tool allocate without bound.
        if (capacity == 0 || (capacity & (capacity - 1)) != 0 || capacity > (uint64_t(64) << 20) / p.large_stride)
            return false;
        std::vector<char> buf(size_t(capacity) * p.large_stride);
        bool whole = read_memory(pid, table, buf.data(), buf.size());
        if (!read_memory(pid, p.large_table, &table2, 8) || !read_memory(pid, p.large_capacity, &capacity2, 8))
            return false;
        if (!whole || table2 != table || capacity2 != capacity) continue;
        for (size_t i = 0; i < capacity; ++i) {
            const char* e = buf.data() + i * p.large_stride;
            LargeBlock b;
            std::memcpy(&b.addr, e + p.large_addr, 8);
            std::memcpy(&b.size, e + p.large_size, 8);
            std::memcpy(&b.site, e + p.large_site, 8);
            std::memcpy(&b.epoch, e + p.large_epoch, 4);
            // Empty, freed, or torn (an entry being written): left out.
            if (!b.addr || (b.size & p.large_freed) || !b.size || ((b.addr | b.size) & page_mask) ||
                b.addr + b.size < b.addr)
                continue;
            out->push_back(b);
        }
        return true;
    }
    return false;
}

bool reread(pid_t pid, Located* loc) {
    Descriptor d;
    if (!read_value(pid, loc->addr, &d) || d.magic != btm::introspect::kMagic ||
        d.version != btm::introspect::kVersion || d.size != sizeof(Descriptor))
        return false;
    loc->d = d;
    return true;
}

namespace {

// A stamp's second (0: before the clock started, read as `base`) is
// earlier than `before`.
bool stamped_before(uint32_t epoch, uint32_t base, uint32_t before) { return int32_t(before - (epoch ? epoch : base)) > 0; }

// The slabs' part of cold_ranges.
bool slab_ranges(pid_t pid, const Descriptor& d, uint32_t before, uint32_t base, std::vector<Range>* out,
                 std::string* why) {
    if (!layout_ok(d)) {
        *why = "its heap descriptor does not add up (corrupted?): left alone";
        return false;
    }
    auto fail = [&](const char* what) {
        *why = std::string("cannot read its heap tables: ") + what;
        return false;
    };
    uint32_t nregions = 0, nchunks = 0;
    if (!read_value(pid, d.nregions, &nregions) || !read_value(pid, d.nchunks, &nchunks))
        return fail(std::strerror(errno));
    if (nregions == 0 || nregions > d.max_regions || nchunks > d.max_chunks) return fail("counts out of range");
    std::vector<char> rbuf(size_t(nregions) * d.region_stride);
    if (!read_memory(pid, d.regions, rbuf.data(), rbuf.size())) return fail("the reservation table");
    struct Region {
        uint64_t base, used;
    };
    std::vector<Region> regions;
    for (uint32_t i = 0; i < nregions; ++i) {
        uint64_t base, size, used;
        const char* r = rbuf.data() + size_t(i) * d.region_stride;
        std::memcpy(&base, r + d.region_base, 8);
        std::memcpy(&size, r + d.region_size, 8);
        std::memcpy(&used, r + d.region_used, 8);
        if (used > size || base + used < base) return fail("a reservation out of range");
        regions.push_back({base, used});
    }
    auto in_heap = [&](uint64_t chunk) {
        for (const Region& r : regions)
            if (chunk >= r.base && chunk - r.base < r.used && r.used - (chunk - r.base) >= d.chunk_size) return true;
        return false;
    };

    const uint32_t page_shift = d.page_shift;

    const uint32_t ngroups = (nchunks + d.group_entries - 1) / d.group_entries;
    std::vector<char> groups(size_t(ngroups) * d.group_stride);
    if (!read_memory(pid, d.registry, groups.data(), groups.size())) return fail("the chunk registry");
    const size_t header_bytes = size_t(d.chunk_slabs) + size_t(d.max_pages_per_chunk) * d.slab_stride;
    std::vector<char> h(header_bytes);
    for (uint32_t k = 0; k < nchunks; ++k) {
        uint64_t chunk;
        std::memcpy(&chunk, groups.data() + size_t(k / d.group_entries) * d.group_stride + d.group_entries_offset +
                                size_t(k % d.group_entries) * d.entry_stride + d.entry_chunk,
                    8);
        if (chunk == 0) continue;  // being added right now
        if ((chunk & (d.chunk_size - 1)) != 0 || !in_heap(chunk)) return fail("a chunk outside the reservation");
        if (!read_memory(pid, chunk, h.data(), h.size())) return fail("a chunk header");
        uint64_t magic;
        uint32_t npages, first;
        std::memcpy(&magic, h.data() + d.chunk_magic_at, 8);
        std::memcpy(&npages, h.data() + d.chunk_npages, 4);
        std::memcpy(&first, h.data() + d.chunk_first_page, 4);
        if (magic != d.chunk_magic) continue;  // being made right now (or not a chunk): left alone
        if (npages > d.max_pages_per_chunk || (uint64_t(npages) << page_shift) > d.chunk_size || first > npages)
            return fail("a chunk header out of range");
        if (h[d.chunk_released]) continue;
        for (uint32_t p = first; p < npages;) {
            uint64_t e;
            std::memcpy(&e, h.data() + d.chunk_pagemap + size_t(p) * 8, 8);
            if (e == 0 || (e >> d.pagemap_offset_shift) != 0) {
                ++p;
                continue;
            }
            const char* s = h.data() + d.chunk_slabs + size_t(p) * d.slab_stride;
            uint16_t sn;
            uint32_t epoch;
            std::memcpy(&sn, s + d.slab_npages, 2);
            std::memcpy(&epoch, s + d.slab_epoch, 4);
            if (sn == 0 || sn > npages - p) {  // torn: a slab being made or freed now
                ++p;
                continue;
            }
            if (stamped_before(epoch, base, before)) {
                uint64_t a = chunk + (uint64_t(p) << page_shift), len = uint64_t(sn) << page_shift;
                if (!out->empty() && out->back().addr + out->back().len == a) out->back().len += len;
                else out->push_back({a, len});
            }
            p += sn;
        }
    }
    return true;
}

}  // namespace

bool cold_ranges(pid_t pid, const Located& loc, unsigned min_age, std::vector<Range>* out, std::string* why) {
    const Descriptor& d = loc.d;
    out->clear();
    if (!d.ready && !loc.large) return true;  // nothing yet
    uint32_t now = 0, started = 0, clock_base = 0;
    process_clock(pid, &now, &started);
    if (d.clock_base && !read_value(pid, d.clock_base, &clock_base)) {
        *why = std::string("cannot read its heap tables: ") + std::strerror(errno);
        return false;
    }
    const uint32_t base = clock_base ? clock_base : started;
    const uint32_t before = min_age ? now - min_age : now + 1;
    if (d.ready && !slab_ranges(pid, d, before, base, out, why)) return false;
    Profile p;
    std::vector<LargeBlock> blocks;
    if (!loc.large) return true;
    if (!read_profile(pid, loc, &p) || !read_large(pid, p, d.page_shift, &blocks)) {
        *why = "cannot read its large-block table";
        return false;
    }
    for (const LargeBlock& b : blocks)
        if (stamped_before(b.epoch, base, before)) out->push_back({b.addr, b.size});
    return true;
}

bool record_pageout(pid_t pid, const Located& loc, uint64_t bytes) {
    Descriptor d;
    // Only into a descriptor that is still there (the words it already has
    // count on from).
    if (!read_value(pid, loc.addr, &d) || d.magic != btm::introspect::kMagic) return false;
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t words[3] = {uint64_t(ts.tv_sec), bytes, d.pageouts + 1};
    static_assert(offsetof(Descriptor, last_pageout_bytes) == offsetof(Descriptor, last_pageout_realtime) + 8 &&
                  offsetof(Descriptor, pageouts) == offsetof(Descriptor, last_pageout_realtime) + 16);
    iovec local{words, sizeof words};
    iovec remote{reinterpret_cast<void*>(loc.addr + offsetof(Descriptor, last_pageout_realtime)), sizeof words};
    return process_vm_writev(pid, &local, 1, &remote, 1, 0) == ssize_t(sizeof words);
}

}  // namespace btm_heap
