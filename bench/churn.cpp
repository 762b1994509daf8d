// churn: single-thread malloc/free churn at one fixed size.
//
// A window of `--window` live objects; each operation frees a random slot and
// refills it with a new allocation of `--size` bytes (one malloc + one free).
// The random slot order keeps the allocator off a pure LIFO path, which is
// what a real program's small objects look like. Reports ns per operation, of
// the fastest of 10 time slices (common.h says why).
#include <vector>

#include "common.h"

using namespace bench;

int main(int argc, char** argv) {
  Args args(argc, argv, {"--size", "--window", "--time", "--seed"});
  const size_t size = size_t(args.integer("--size", 64));
  const uint32_t window = uint32_t(args.integer("--window", 256));
  const double target_s = args.num("--time", 0.3);
  report_provider();

  // Precomputed slot stream so the generator's cost is a load, not arithmetic.
  constexpr uint32_t kStream = 1u << 16;
  std::vector<uint32_t> stream(kStream);
  Rng rng(uint64_t(args.integer("--seed", 1)));
  for (auto& s : stream) s = rng.below(window);

  std::vector<void*> slots(window);
  for (auto& p : slots) {
    p = std::malloc(size);
    static_cast<char*>(p)[0] = 1;
  }

  uint64_t k = 0;
  auto run_batch = [&] {
    for (uint32_t j = 0; j < kStream; ++j, ++k) {
      uint32_t i = stream[j];
      std::free(slots[i]);
      char* p = static_cast<char*>(std::malloc(size));
      p[0] = char(k);
      escape(p);
      slots[i] = p;
    }
  };

  run_batch();  // warm-up: reach the allocator's steady state first
  const SlicedResult r = run_sliced(target_s, 10, kStream, run_batch);

  for (void* p : slots) std::free(p);

  char name[64];
  if (size >= 1024 && size % 1024 == 0)
    std::snprintf(name, sizeof name, "churn_%zuKiB", size / 1024);
  else
    std::snprintf(name, sizeof name, "churn_%zuB", size);
  std::printf("# mean_over_run %.3f ns/op\n", r.mean_ns_per_op);
  report(name, r.best_ns_per_op, "ns/op");
  return 0;
}
