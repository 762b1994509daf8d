// tools/common's heap reader.  Against a live child running with btmalloc,
// it must find the descriptor by its ELF symbol and compute the same cold
// ranges as the library's own btm_pageout_cold().  Against tables it is fed
// (a fake heap in this process, then mutated at random, as a torn or hostile
// process could present them) it must never crash and never return a range
// outside the reservation it read.
// Usage: pageout_reader_test LIBBTMALLOC
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "heap_reader.h"

namespace {

const char* g_library;
constexpr size_t kLargeBlocks = 4, kLargeBlock = size_t{2} << 20;

// The child: fills ~8 MiB through btmalloc, and 8 MiB in large blocks,
// then answers "age" requests on its stdin with the bytes
// btm_pageout_cold(age) submitted.  It allocates
// nothing after the fill, so its tables stay as the parent read them.
int child_main() {
    auto pageout = reinterpret_cast<size_t (*)(unsigned)>(dlsym(RTLD_DEFAULT, "btm_pageout_cold"));
    if (!pageout) return 3;
    static char* objects[8192];
    for (size_t i = 0; i < 8192; ++i) {
        objects[i] = static_cast<char*>(malloc(1000));
        memset(objects[i], int(i), 1000);
    }
    static char* large[kLargeBlocks];
    for (char*& p : large) {
        p = static_cast<char*>(malloc(kLargeBlock));
        memset(p, 1, kLargeBlock);
    }
    unsigned age;
    if (write(1, "r", 1) != 1) return 4;
    while (read(0, &age, sizeof age) == sizeof age) {
        uint64_t bytes = pageout(age);
        if (write(1, &bytes, sizeof bytes) != sizeof bytes) return 4;
    }
    return 0;
}

struct Child {
    pid_t pid = -1;
    int to = -1, from = -1;
    Child() {
        int a[2], b[2];
        if (pipe2(a, O_CLOEXEC) || pipe2(b, O_CLOEXEC)) return;
        pid = fork();
        if (pid == 0) {
            dup2(a[0], 0);
            dup2(b[1], 1);
            setenv("LD_PRELOAD", g_library, 1);
            setenv("BTM_CONF", "", 1);
            execl("/proc/self/exe", "pageout_reader_test", "--child", static_cast<char*>(nullptr));
            _exit(127);
        }
        close(a[0]);
        close(b[1]);
        to = a[1], from = b[0];
        char c;
        if (read(from, &c, 1) != 1) pid = -1;
    }
    uint64_t pageout(unsigned age) {
        uint64_t bytes = ~uint64_t(0);
        if (write(to, &age, sizeof age) != sizeof age || read(from, &bytes, sizeof bytes) != sizeof bytes) return ~0ull;
        return bytes;
    }
    ~Child() {
        close(to);
        close(from);
        if (pid > 0) waitpid(pid, nullptr, 0);
    }
};

// A started child's descriptor, found as btm-pageout finds it (callers
// check HasFatalFailure).
void locate_child(const Child& c, btm_heap::Located* loc) {
    ASSERT_GT(c.pid, 0) << "the btmalloc child did not start";
    std::string why;
    ASSERT_EQ(btm_heap::locate(c.pid, loc, &why), btm_heap::Found::kYes) << why;
}

uint64_t total(const std::vector<btm_heap::Range>& r) {
    uint64_t n = 0;
    for (auto& x : r) n += x.len;
    return n;
}

TEST(Reader, SameRangesAsTheLibrary) {
    Child c;
    btm_heap::Located loc;
    ASSERT_NO_FATAL_FAILURE(locate_child(c, &loc));
    EXPECT_NE(loc.library.find("libbtmalloc"), std::string::npos) << loc.library;
    ASSERT_TRUE(loc.d.ready);
    EXPECT_TRUE(loc.d.accepts_pageout);
    std::vector<btm_heap::Range> r;
    std::string why;
    sleep(2);  // every slab of the fill is now at least a second old
    for (unsigned age : {0u, 1u, 3600u}) {
        ASSERT_TRUE(btm_heap::reread(c.pid, &loc));
        ASSERT_TRUE(btm_heap::cold_ranges(c.pid, loc, age, &r, &why)) << why;
        EXPECT_EQ(total(r), c.pageout(age)) << "min_age " << age;
        if (age == 0) {
            EXPECT_GE(total(r), 8000u * 1000 + kLargeBlocks * kLargeBlock) << "slabs and large blocks";
        } else if (age == 3600) {
            EXPECT_EQ(total(r), 0u);
        }
    }
}

TEST(Reader, PlainProcessIsNotBtmalloc) {
    btm_heap::Located loc;
    std::string why;
    EXPECT_EQ(btm_heap::locate(getpid(), &loc, &why), btm_heap::Found::kNotBtmalloc) << why;
}

// A heap of one chunk, laid out as a real descriptor says (taken from a
// live child), built in this process's memory.
struct FakeHeap {
    btm_heap::Located loc;
    char* chunk = nullptr;
    std::vector<char> regions, registry;
    uint32_t nregions = 1, nchunks = 1, clock_base = 1;
    static constexpr uint64_t kUsed = 2u << 20;

    void* map = nullptr;
    static constexpr size_t kMapped = 8u << 20;

    explicit FakeHeap(const btm_heap::Descriptor& real)
        : real_group_entries_offset(real.group_entries_offset), real_entry_chunk(real.entry_chunk) {
        auto& d = loc.d;
        d = real;
        void* p = map = mmap(nullptr, kMapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uintptr_t a = (reinterpret_cast<uintptr_t>(p) + (2u << 20) - 1) & ~uintptr_t((2u << 20) - 1);
        chunk = reinterpret_cast<char*>(a);
        regions.assign(d.region_stride * d.max_regions, 0);
        uint64_t base = a, size = 4u << 20, used = kUsed;
        memcpy(&regions[d.region_base], &base, 8);
        memcpy(&regions[d.region_size], &size, 8);
        memcpy(&regions[d.region_used], &used, 8);
        registry.assign(d.group_stride, 0);
        memcpy(&registry[d.group_entries_offset + d.entry_chunk], &base, 8);
        d.regions = reinterpret_cast<uintptr_t>(regions.data());
        d.nregions = reinterpret_cast<uintptr_t>(&nregions);
        d.registry = reinterpret_cast<uintptr_t>(registry.data());
        d.nchunks = reinterpret_cast<uintptr_t>(&nchunks);
        d.clock_base = reinterpret_cast<uintptr_t>(&clock_base);
        write_chunk(chunk);
        write_chunk(decoy());  // a perfect chunk just past the reservation
    }
    char* decoy() const { return chunk + kUsed; }
    void write_chunk(char* c) {
        const auto& d = loc.d;
        uint32_t npages = uint32_t(d.chunk_size >> d.page_shift), first = 40;
        memcpy(c + d.chunk_magic_at, &d.chunk_magic, 8);
        memcpy(c + d.chunk_npages, &npages, 4);
        memcpy(c + d.chunk_first_page, &first, 4);
        // Slabs of 1 to 4 pages, alternately old (epoch 1) and fresh.
        for (uint32_t pg = first, k = 0; pg + 4 <= npages; pg += 4, ++k) {
            uint16_t n = uint16_t(1 + k % 4);
            for (uint16_t i = 0; i < n; ++i) {
                uint64_t e = 1 | (uint64_t(i) << d.page_shift << d.pagemap_offset_shift);
                memcpy(c + d.chunk_pagemap + 8 * (pg + i), &e, 8);
            }
            uint32_t epoch = k % 2 ? 1 : 0x7fffffff;
            memcpy(c + d.chunk_slabs + size_t(pg) * d.slab_stride + d.slab_npages, &n, 2);
            memcpy(c + d.chunk_slabs + size_t(pg) * d.slab_stride + d.slab_epoch, &epoch, 4);
        }
    }
    // Where the registry's first entry holds its chunk (the real layout,
    // whatever the mutations do to loc.d later).
    size_t entry_at() const { return size_t(real_group_entries_offset) + real_entry_chunk; }
    uint32_t real_group_entries_offset, real_entry_chunk;
    void point_entry_at(const char* c) {
        uint64_t a = reinterpret_cast<uintptr_t>(c);
        memcpy(&registry[entry_at()], &a, 8);
    }
    ~FakeHeap() { munmap(map, kMapped); }
    FakeHeap(const FakeHeap&) = delete;
    FakeHeap& operator=(const FakeHeap&) = delete;

    bool inside(const btm_heap::Range& r) const {
        uintptr_t a = reinterpret_cast<uintptr_t>(chunk);
        return r.addr >= a && r.len <= kUsed && r.addr - a <= kUsed - r.len;
    }
};

TEST(Reader, HostileTablesStayInsideTheReservation) {
    btm_heap::Descriptor real;
    {
        Child c;
        btm_heap::Located loc;
        ASSERT_NO_FATAL_FAILURE(locate_child(c, &loc));
        real = loc.d;
    }
    FakeHeap heap(real);
    std::vector<btm_heap::Range> r;
    std::string why;
    ASSERT_TRUE(btm_heap::cold_ranges(getpid(), heap.loc, 1, &r, &why)) << why;
    ASSERT_FALSE(r.empty()) << "the fake heap has old slabs";
    for (auto& x : r) EXPECT_TRUE(heap.inside(x));

    // The registry names a well-formed chunk outside the reservation: the
    // process's tables do not add up, and nothing of it is taken.
    {
        FakeHeap h(real);
        h.point_entry_at(h.decoy());
        r.clear();
        EXPECT_FALSE(btm_heap::cold_ranges(getpid(), h.loc, 1, &r, &why));
        EXPECT_TRUE(r.empty());
    }
    // Counts beyond the descriptor's limits.
    {
        FakeHeap h(real);
        h.nchunks = h.loc.d.max_chunks + 1;
        EXPECT_FALSE(btm_heap::cold_ranges(getpid(), h.loc, 1, &r, &why));
        h.nchunks = 1;
        h.nregions = h.loc.d.max_regions + 1;
        EXPECT_FALSE(btm_heap::cold_ranges(getpid(), h.loc, 1, &r, &why));
    }

    // Mutations: layout fields of the descriptor, the counts, the registry
    // entry and any byte of the chunk header; never the reservation table,
    // which is what the ranges are checked against.
    std::mt19937_64 rng(17);
    const size_t layout_from = offsetof(btm_heap::Descriptor, max_regions);
    const size_t layout_to = offsetof(btm_heap::Descriptor, last_pageout_realtime);
    const size_t header = size_t(real.chunk_slabs) + size_t(real.max_pages_per_chunk) * real.slab_stride;
    unsigned accepted = 0;
    for (int round = 0; round < 3000; ++round) {
        FakeHeap h(real);
        for (int m = 0; m < 1 + int(rng() % 6); ++m) {
            uint64_t v = rng();
            switch (rng() % 5) {
                case 0: {
                    size_t at = layout_from + rng() % (layout_to - layout_from);
                    if (at >= offsetof(btm_heap::Descriptor, region_stride) &&
                        at < offsetof(btm_heap::Descriptor, group_stride))
                        break;  // the reservation's own layout
                    reinterpret_cast<char*>(&h.loc.d)[at] = char(v);
                    break;
                }
                case 1: h.nchunks = uint32_t(v % 4 ? v % 8 : v); break;
                case 2:
                    if (v % 2) h.point_entry_at(h.decoy());
                    else h.registry[h.entry_at() + rng() % 8] = char(v);
                    break;
                case 3: h.chunk[rng() % header] = char(v); break;
                case 4: h.clock_base = uint32_t(v); break;
            }
        }
        r.clear();
        if (btm_heap::cold_ranges(getpid(), h.loc, uint32_t(rng() % 4), &r, &why)) ++accepted;
        for (auto& x : r) ASSERT_TRUE(h.inside(x)) << "round " << round << ": a range outside the reservation";
    }
    EXPECT_GT(accepted, 0u);
}

// The large-block table as this process presents it (the layout of a
// real library's profile section), then with hostile counts and entries:
// the reader takes only page-aligned live entries, refuses counts it would
// have to allocate without bound, and never crashes.
TEST(Reader, HostileLargeTable) {
    btm_heap::Profile real;
    {
        Child c;
        btm_heap::Located loc;
        ASSERT_NO_FATAL_FAILURE(locate_child(c, &loc));
        ASSERT_TRUE(loc.large) << "the profile section does not locate the large-block table";
        ASSERT_TRUE(btm_heap::read_profile(c.pid, loc, &real));
    }
    constexpr size_t kSlots = 64;
    std::vector<char> table(kSlots * real.large_stride);
    uint64_t table_addr = reinterpret_cast<uintptr_t>(table.data()), capacity = kSlots;
    btm_heap::Profile p = real;
    p.large_table = reinterpret_cast<uintptr_t>(&table_addr);
    p.large_capacity = reinterpret_cast<uintptr_t>(&capacity);
    auto put = [&](size_t slot, uint64_t addr, uint64_t size) {
        std::memcpy(table.data() + slot * p.large_stride + p.large_addr, &addr, 8);
        std::memcpy(table.data() + slot * p.large_stride + p.large_size, &size, 8);
    };
    put(3, 0x7f0000000000, 0x300000);                      // live
    put(9, 0x7f0000400000, 0x100000 | p.large_freed);      // freed
    put(17, 0x7f0000800123, 0x100000);                     // torn: not page-aligned
    std::vector<btm_heap::LargeBlock> blocks;
    ASSERT_TRUE(btm_heap::read_large(getpid(), p, 12, &blocks));
    ASSERT_EQ(blocks.size(), 1u);
    EXPECT_EQ(blocks[0].addr, 0x7f0000000000u);
    EXPECT_EQ(blocks[0].size, 0x300000u);
    for (uint64_t bad : {uint64_t{0} + 63, uint64_t{1} << 40, ~uint64_t{0}}) {
        capacity = bad;
        EXPECT_FALSE(btm_heap::read_large(getpid(), p, 12, &blocks)) << "capacity " << bad;
    }
    capacity = kSlots;
    std::mt19937_64 rng(20);
    for (int round = 0; round < 2000; ++round) {
        for (int m = 0; m < 1 + int(rng() % 8); ++m) table[rng() % table.size()] = char(rng());
        if (btm_heap::read_large(getpid(), p, 12, &blocks))
            for (const auto& b : blocks) ASSERT_TRUE(b.size && !((b.addr | b.size) & 4095) && b.addr + b.size > b.addr);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 2 && std::string(argv[1]) == "--child") return child_main();
    testing::InitGoogleTest(&argc, argv);
    if (argc != 2) {
        fprintf(stderr, "usage: pageout_reader_test LIBBTMALLOC\n");
        return 2;
    }
    g_library = argv[1];
    return RUN_ALL_TESTS();
}
