// churn: single-thread malloc/free churn at one fixed size.
//
// A window of `--window` live objects; each operation frees a random slot and
// refills it with a new allocation of `--size` bytes (one malloc + one free).
// The random slot order keeps the allocator off a pure LIFO path, which is
// what a real program's small objects look like. `--size 0` draws each
// allocation's size from the mixed small sizes (common.h) instead, in a
// precomputed stream like the slots. `--api new` uses
// ::operator new and sized ::operator delete instead, the path a C++ program
// takes. Reports ns per operation, of the fastest of 10 time slices
// (common.h says why).
#include <new>
#include <string_view>
#include <vector>

#include "common.h"

using namespace bench;

namespace {

struct MallocApi {
  static void* alloc(size_t n) { return std::malloc(n); }
  static void release(void* p, size_t) { std::free(p); }
};

struct NewApi {
  static void* alloc(size_t n) { return ::operator new(n); }
  static void release(void* p, size_t n) { ::operator delete(p, n); }
};

// Mixed: each allocation's size comes from a precomputed stream too, and the
// size each slot holds is remembered for the sized delete; the fixed-size loop
// stays as it was, without those loads.
template <class Api, bool Mixed>
SlicedResult churn(size_t size, uint32_t window, double target_s, uint64_t seed) {
  // Precomputed slot stream so the generator's cost is a load, not arithmetic.
  constexpr uint32_t kStream = 1u << 16;
  std::vector<uint32_t> stream(kStream), sizes(kStream, uint32_t(size));
  Rng rng(seed);
  for (auto& s : stream) s = rng.below(window);
  if constexpr (Mixed)
    for (auto& s : sizes) s = mixed_small_size(rng);
  std::vector<uint32_t> held(window);
  for (uint32_t i = 0; i < window; ++i) held[i] = sizes[i % kStream];

  std::vector<void*> slots(window);
  for (uint32_t i = 0; i < window; ++i) {
    slots[i] = Api::alloc(held[i]);
    static_cast<char*>(slots[i])[0] = 1;
  }

  uint64_t k = 0;
  auto run_batch = [&] {
    for (uint32_t j = 0; j < kStream; ++j, ++k) {
      uint32_t i = stream[j];
      if constexpr (Mixed) {
        Api::release(slots[i], held[i]);
        held[i] = sizes[j];
      } else {
        Api::release(slots[i], size);
      }
      char* p = static_cast<char*>(Api::alloc(Mixed ? held[i] : size));
      p[0] = char(k);
      escape(p);
      slots[i] = p;
    }
  };

  run_batch();  // warm-up: reach the allocator's steady state first
  const SlicedResult r = run_sliced(target_s, 10, kStream, run_batch);
  for (uint32_t i = 0; i < window; ++i) Api::release(slots[i], held[i]);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, {"--size", "--window", "--time", "--api", "--seed"});
  const size_t size = size_t(args.integer("--size", 64));
  const uint32_t window = uint32_t(args.integer("--window", 256));
  const double target_s = args.num("--time", 0.3);
  const std::string_view api = args.str("--api", "malloc");
  const uint64_t seed = uint64_t(args.integer("--seed", 1));
  if (api != "malloc" && api != "new") {
    std::fprintf(stderr, "--api must be malloc or new\n");
    return 2;
  }
  report_provider();

  const bool mixed = size == 0;
  const SlicedResult r = api == "new" ? (mixed ? churn<NewApi, true> : churn<NewApi, false>)(size, window, target_s, seed)
                                      : (mixed ? churn<MallocApi, true> : churn<MallocApi, false>)(size, window, target_s, seed);

  char name[64];
  const char* suffix = api == "new" ? "_new" : "";
  if (mixed)
    std::snprintf(name, sizeof name, "churn_mixed%s", suffix);
  else if (size >= 1024 && size % 1024 == 0)
    std::snprintf(name, sizeof name, "churn_%zuKiB%s", size / 1024, suffix);
  else
    std::snprintf(name, sizeof name, "churn_%zuB%s", size, suffix);
  std::printf("# wall_mean_over_run %.3f ns/op\n", r.mean_wall_ns_per_op);
  report(name, r.best_ns_per_op, "ns/op");
  return 0;
}
