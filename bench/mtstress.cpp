// mtstress: threads allocating mixed sizes with mixed lifetimes, some of the
// objects freed by another thread.
//
// Each of `--threads` threads does `--ops` operations on three kinds of
// object: 70% replace one of 64 short-lived objects (a window that turns over
// every few hundred operations), 20% replace one of `--live` long-lived ones,
// 10% allocate an object and swap it into a table shared by all threads,
// freeing whatever the swap took out (usually another thread's object).
// Sizes: 90% mixed small (common.h), 9% 1-16 KiB, 1% 16-128 KiB; the first
// bytes of every object are written.  The sequence of operations and sizes is
// drawn before the clock starts.  Reports the wall time from the start signal
// to the last thread's end, in ms, and (`_cpu`) the threads' CPU time summed,
// which a busy machine disturbs less.
#include "common.h"

using namespace bench;

namespace {

constexpr uint32_t kShort = 64;
constexpr uint32_t kShared = 1024;

struct Op {
  uint32_t kind_slot;  // kind in the top 2 bits, slot below
  uint32_t size;
};

uint32_t draw_size(Rng& rng) {
  uint32_t r = rng.below(100);
  if (r < 90) return mixed_small_size(rng);
  if (r < 99) return 1024 + rng.below(15 * 1024 + 1);
  return 16 * 1024 + rng.below(112 * 1024 + 1);
}

char* make(uint32_t size) {
  char* p = static_cast<char*>(std::malloc(size));
  std::memset(p, 0x5a, size < 64 ? size : 64);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, {"--threads", "--ops", "--live", "--seed"});
  const int threads = int(args.integer("--threads", 2));
  const long ops = args.integer("--ops", 1000000);
  const uint32_t live = uint32_t(args.integer("--live", 4000));
  const uint64_t seed = uint64_t(args.integer("--seed", 1));
  if (threads < 1 || ops < 1 || live < 1) {
    std::fprintf(stderr, "%s: --threads, --ops and --live must be positive\n", argv[0]);
    return 2;
  }
  report_provider();

  std::vector<std::atomic<char*>> shared(kShared);
  for (auto& s : shared) s.store(nullptr);
  char name[32];
  std::snprintf(name, sizeof name, "mtstress_%dt", threads);
  run_timed_workers(name, threads, [&](int t, auto begin) {
    Rng rng(seed + uint64_t(t) * 7919);
    std::vector<Op> plan(static_cast<size_t>(ops));
    for (Op& op : plan) {
      uint32_t r = rng.below(10);
      uint32_t kind = r < 7 ? 0 : r < 9 ? 1 : 2;
      uint32_t slot = rng.below(kind == 0 ? kShort : kind == 1 ? live : kShared);
      op = {kind << 30 | slot, draw_size(rng)};
    }
    std::vector<char*> short_lived(kShort), long_lived(live);
    for (auto& p : short_lived) p = make(draw_size(rng));
    for (auto& p : long_lived) p = make(draw_size(rng));
    begin();
    for (const Op& op : plan) {
      uint32_t slot = op.kind_slot & ((1u << 30) - 1);
      switch (op.kind_slot >> 30) {
        case 0:
          std::free(short_lived[slot]);
          short_lived[slot] = make(op.size);
          break;
        case 1:
          std::free(long_lived[slot]);
          long_lived[slot] = make(op.size);
          break;
        default:
          std::free(shared[slot].exchange(make(op.size), std::memory_order_acq_rel));
          break;
      }
    }
    for (char* p : short_lived) std::free(p);
    for (char* p : long_lived) std::free(p);
  });
  for (auto& s : shared) std::free(s.load());
  return 0;
}
