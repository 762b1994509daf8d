// scatter16k: 16 KiB blocks allocated, then freed in random order.
//
// Each cycle allocates `--blocks` blocks of 16 KiB, writes one byte in each of
// their pages, and frees them all in a random order. Scattered frees leave
// partially free pages and slabs behind, the case in which an allocator that
// returns memory too eagerly pays an madvise (and later a page fault) per
// free. The first cycle (fresh memory) is warm-up. Reports ns per free, ns per
// malloc, and ns per block for the whole cycle including the page touches,
// where refaulting returned memory shows up.
#include <algorithm>
#include <vector>

#include "common.h"

using namespace bench;

int main(int argc, char** argv) {
  Args args(argc, argv, {"--blocks", "--cycles", "--seed"});
  const uint32_t blocks = uint32_t(args.integer("--blocks", 4096));
  const int cycles = int(args.integer("--cycles", 8));
  constexpr size_t kBlock = 16 * 1024;
  report_provider();

  std::vector<char*> ptrs(blocks);
  std::vector<uint32_t> order(blocks);
  for (uint32_t i = 0; i < blocks; ++i) order[i] = i;
  Rng rng(uint64_t(args.integer("--seed", 1)));

  uint64_t malloc_ns = 0, touch_ns = 0, free_ns = 0;
  for (int c = 0; c <= cycles; ++c) {
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < blocks; ++i) ptrs[i] = static_cast<char*>(std::malloc(kBlock));
    uint64_t t1 = now_ns();
    for (uint32_t i = 0; i < blocks; ++i)
      for (size_t off = 0; off < kBlock; off += 4096) ptrs[i][off] = char(i);
    uint64_t t2 = now_ns();
    for (uint32_t i = blocks - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
    uint64_t t3 = now_ns();
    for (uint32_t i = 0; i < blocks; ++i) std::free(ptrs[order[i]]);
    uint64_t t4 = now_ns();
    if (c == 0) continue;
    malloc_ns += t1 - t0;
    touch_ns += t2 - t1;
    free_ns += t4 - t3;
  }

  const double n = double(blocks) * cycles;
  report("scatter16k_free", double(free_ns) / n, "ns/op");
  report("scatter16k_malloc", double(malloc_ns) / n, "ns/op");
  report("scatter16k_cycle", double(malloc_ns + touch_ns + free_ns) / n, "ns/block");
  return 0;
}
