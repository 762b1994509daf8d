// sites: malloc/free churn where the allocations come from many distinct call
// sites.
//
// Each site is its own function, step<N>, whose call to malloc has its own
// return address: the key btmalloc partitions on. A round is 1024 direct calls
// step<0 % S>, step<1 % S>, ..., step<1023 % S> for S = `--sites`, so with one
// site or with 1024 the loop has the same calls, the same (perfectly predicted)
// branches and the same work; only the number of distinct malloc call sites
// differs. Each step frees a random slot of a `--window` ring and refills it.
// `--size 0` draws mixed sizes (16-512 B) instead of one fixed size. Reports ns
// per operation (one malloc + one free; the fastest of 10 time slices) and the
// resident set at the end, which shows what many (site, size class) pairs pin.
#include <utility>
#include <vector>

#include "common.h"

using namespace bench;

namespace {

constexpr size_t kRound = 1024;

struct Step {
  uint32_t slot;
  uint32_t size;
};

struct Ctx {
  const Step* stream;
  uint32_t mask;
  uint32_t k;
  void** slots;
};

volatile uint32_t g_site_sink;

template <size_t N>
__attribute__((noinline)) void step(Ctx& c) {
  g_site_sink = uint32_t(N);  // a distinct body per site, so no two get folded
  const Step& s = c.stream[c.k++ & c.mask];
  std::free(c.slots[s.slot]);
  char* p = static_cast<char*>(std::malloc(s.size));
  p[0] = char(N);
  c.slots[s.slot] = p;
}

template <size_t S, size_t... I>
__attribute__((noinline)) void round(Ctx& c, std::index_sequence<I...>) {
  (step<I % S>(c), ...);
}

using RoundFn = void (*)(Ctx&);
template <size_t S>
void round_of(Ctx& c) {
  round<S>(c, std::make_index_sequence<kRound>{});
}

struct Variant {
  uint32_t sites;
  RoundFn fn;
};
constexpr Variant kVariants[] = {{1, round_of<1>},     {8, round_of<8>},     {64, round_of<64>},
                                 {256, round_of<256>}, {1024, round_of<1024>}};

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, {"--sites", "--size", "--window", "--time", "--seed"});
  const uint32_t sites = uint32_t(args.integer("--sites", 256));
  const uint32_t fixed_size = uint32_t(args.integer("--size", 64));
  const uint32_t window = uint32_t(args.integer("--window", 1024));
  const double target_s = args.num("--time", 0.3);
  RoundFn round_fn = nullptr;
  for (const Variant& v : kVariants)
    if (v.sites == sites) round_fn = v.fn;
  if (!round_fn) {
    std::fprintf(stderr, "--sites must be one of 1, 8, 64, 256, 1024\n");
    return 2;
  }
  report_provider();

  constexpr uint32_t kStream = 1u << 16;
  std::vector<Step> stream(kStream);
  Rng rng(uint64_t(args.integer("--seed", 1)));
  for (auto& s : stream) {
    s.slot = rng.below(window);
    s.size = fixed_size ? fixed_size : 16 + rng.below(512 - 16 + 1);
  }
  std::vector<void*> slots(window);
  for (auto& p : slots) p = std::malloc(fixed_size ? fixed_size : 64);
  Ctx ctx{stream.data(), kStream - 1, 0, slots.data()};

  for (int i = 0; i < 64; ++i) round_fn(ctx);
  const SlicedResult r = run_sliced(target_s, 10, 64 * kRound, [&] {
    for (int i = 0; i < 64; ++i) round_fn(ctx);
  });
  const uint64_t rss = rss_bytes();

  for (void* p : slots) std::free(p);

  char name[64];
  char size_name[24];
  if (fixed_size)
    std::snprintf(size_name, sizeof size_name, "%uB", fixed_size);
  else
    std::snprintf(size_name, sizeof size_name, "mixed");
  std::snprintf(name, sizeof name, "sites%u_%s", sites, size_name);
  std::printf("# wall_mean_over_run %.3f ns/op\n", r.mean_wall_ns_per_op);
  report(name, r.best_ns_per_op, "ns/op");
  std::snprintf(name, sizeof name, "sites%u_%s_rss", sites, size_name);
  report(name, double(rss) / (1 << 20), "MiB");
  return 0;
}
