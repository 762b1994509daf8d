// The slot-start test of free's hit path (src/core/state.h, slot_start): one
// multiply by the inverse of the size's odd part, one rotate and one compare
// must say exactly "off is a multiple of the size and below capacity * size"
// for every size class, every capacity a slab can have, and every offset a
// page-map entry can produce (a slab is at most 2 MiB; the offsets past it
// stand for a corrupted entry).  A wrong answer either way is a bug on the
// hit path: a slot start refused is a leak counted as an invalid free, an
// interior pointer accepted is pushed into a bin and handed out twice.
#include <gtest/gtest.h>

#include "core/state.h"

namespace {

using btm::kClassSize;
using btm::kNumClasses;

// The capacities to try for a class: the smallest, the largest a slab holds
// (0xffff slots), and those of the slab sizes init can choose (1-64 pages of
// 4 KiB and 16 KiB).
std::vector<uint32_t> capacities(uint32_t size) {
    std::vector<uint32_t> out{1, 2, 3, 0xffff};
    for (uint32_t page : {4096u, 16384u})
        for (uint32_t pages = 1; pages <= 512; pages *= 2) {
            uint64_t slots = uint64_t(page) * pages / size;
            if (slots > 0 && slots <= 0xffff) out.push_back(uint32_t(slots));
        }
    return out;
}

TEST(SlotCheck, AgreesWithDivisionForEveryClassAndOffset) {
    uint64_t checked = 0;
    for (unsigned c = 0; c < kNumClasses; ++c) {
        const uint32_t size = kClassSize[c];
        for (uint32_t cap : capacities(size)) {
            const btm::SlotCheck k = btm::make_slot_check(size, cap);
            const uint64_t limit = uint64_t(cap) * size;
            // Every byte up to a page past the last slot (256 KiB at most);
            // beyond, every 16th up to 4 MiB, and around each slot start.
            const uint64_t dense = std::min<uint64_t>(limit + 4096, uint64_t(1) << 18);
            for (uint64_t off = 0; off < dense; ++off, ++checked) {
                bool want = off % size == 0 && off < limit;
                ASSERT_EQ(btm::slot_start(k, off), want) << "size " << size << " capacity " << cap << " offset " << off;
            }
            for (uint64_t off = dense; off < (uint64_t(4) << 20); off += 16, ++checked) {
                bool want = off % size == 0 && off < limit;
                ASSERT_EQ(btm::slot_start(k, off), want) << "size " << size << " capacity " << cap << " offset " << off;
            }
            for (uint64_t i = 0; i <= cap; ++i)
                for (uint64_t d : {uint64_t(0), uint64_t(1), uint64_t(8), uint64_t(16), uint64_t(size) - 16}) {
                    uint64_t off = i * size + d;
                    bool want = off % size == 0 && off < limit;
                    ASSERT_EQ(btm::slot_start(k, off), want) << "size " << size << " capacity " << cap << " offset " << off;
                    ++checked;
                }
        }
    }
    // Offsets far outside any slab: a page-map entry's offset is 32 bits.
    for (unsigned c = 0; c < kNumClasses; ++c) {
        const btm::SlotCheck k = btm::make_slot_check(kClassSize[c], 0xffff);
        const uint64_t size = kClassSize[c], limit = 0xffff * size;
        for (uint64_t off : {uint64_t(0xffffffff), uint64_t(1) << 32, limit - size, limit, ~uint64_t(0), ~uint64_t(0) - 15})
            EXPECT_EQ(btm::slot_start(k, off), off % size == 0 && off < limit) << "size " << size << " offset " << off;
    }
    EXPECT_GT(checked, uint64_t(50) << 20);
}

}  // namespace
