// latency: the distribution of single malloc call latencies under a mixed
// workload.
//
// One thread keeps a live set whose target size swings between a few thousand
// and ~60k objects (a triangle wave), so the allocator sees growth (fresh
// memory, refills, page faults) and shrinkage (flushes, memory return) and not
// just a warm cache. Sizes: 89% small (16-1024 B, skewed small), 10% 1-16 KiB,
// 0.9% 16-128 KiB, 0.1% 128 KiB-1 MiB. Every object is written (first bytes and
// one byte per page), as a program would. Each malloc is timed with the TSC
// (calibrated against CLOCK_MONOTONIC); the cost of an empty timed region is
// measured and subtracted. Reports p50/p99/p999/p9999 and the mean in ns, and
// (as a comment) the sizes behind the slowest 0.1%.
//
// `--count-faults 1` runs the same calls with getrusage(RUSAGE_THREAD) around
// each malloc instead of the TSC and reports the share of mallocs that took a
// minor page fault inside the allocator (no latencies: the system calls would
// dominate them).
#include <sys/resource.h>
#include <x86intrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

using namespace bench;

namespace {

inline uint64_t tsc_begin() {
  _mm_lfence();
  uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}

inline uint64_t tsc_end() {
  _mm_lfence();
  return __rdtsc();
}

double tsc_per_ns() {
  const uint64_t n0 = now_ns(), t0 = __rdtsc();
  while (now_ns() - n0 < 50000000) {
  }
  const uint64_t n1 = now_ns(), t1 = __rdtsc();
  return double(t1 - t0) / double(n1 - n0);
}

uint32_t draw_size(Rng& rng) {
  uint32_t r = rng.below(1000);
  if (r < 890) return mixed_small_size(rng);
  if (r < 990) return 1024 + rng.below(15 * 1024 + 1);
  if (r < 999) return 16 * 1024 + rng.below(112 * 1024 + 1);
  return 128 * 1024 + rng.below(896 * 1024 + 1);
}

void touch(char* p, uint32_t n) {
  std::memset(p, 0x5a, n < 64 ? n : 64);
  for (uint32_t off = 4096; off < n; off += 4096) p[off] = 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, {"--ops", "--max-live", "--period", "--seed", "--count-faults"});
  const bool count_faults = args.integer("--count-faults", 0) != 0;
  const uint64_t ops = uint64_t(args.integer("--ops", 4000000));
  const uint32_t max_live = uint32_t(args.integer("--max-live", 60000));
  const uint64_t period = uint64_t(args.integer("--period", 500000));
  report_provider();
  auto minflt = [] {
    rusage r;
    getrusage(RUSAGE_THREAD, &r);
    return uint64_t(r.ru_minflt);
  };
  uint64_t faulting_mallocs = 0, mallocs = 0;

  const double per_ns = tsc_per_ns();
  std::vector<uint32_t> empty(10001);
  for (auto& e : empty) {
    uint64_t t0 = tsc_begin();
    uint64_t t1 = tsc_end();
    e = uint32_t(t1 - t0);
  }
  std::nth_element(empty.begin(), empty.begin() + empty.size() / 2, empty.end());
  const double overhead_ticks = empty[empty.size() / 2];

  std::vector<char*> live(max_live + 1);
  struct Sample {
    uint32_t ticks;
    uint32_t size;
  };
  std::vector<Sample> samples;
  samples.reserve(ops);
  uint32_t n_live = 0;
  Rng rng(uint64_t(args.integer("--seed", 1)));

  for (uint64_t i = 0; i < ops; ++i) {
    // Triangle wave between 5% and 100% of max_live.
    const double phase = double(i % period) / double(period);
    const double tri = phase < 0.5 ? 2 * phase : 2 - 2 * phase;
    const uint32_t target = uint32_t(max_live * (0.05 + 0.95 * tri));
    // Follow the target with a 3:1 bias, so growth and shrinkage interleave.
    bool grow;
    if (n_live == 0)
      grow = true;
    else if (n_live >= max_live)
      grow = false;
    else
      grow = (rng.below(4) != 0) == (n_live < target);
    if (grow) {
      const uint32_t size = draw_size(rng);
      char* p;
      if (count_faults) {
        const uint64_t f0 = minflt();
        p = static_cast<char*>(std::malloc(size));
        faulting_mallocs += minflt() != f0;
        ++mallocs;
      } else {
        const uint64_t t0 = tsc_begin();
        p = static_cast<char*>(std::malloc(size));
        const uint64_t t1 = tsc_end();
        samples.push_back({uint32_t(std::min<uint64_t>(t1 - t0, UINT32_MAX)), size});
      }
      touch(p, size);
      live[n_live++] = p;
    } else {
      const uint32_t k = rng.below(n_live);
      std::free(live[k]);
      live[k] = live[--n_live];
    }
  }
  for (uint32_t k = 0; k < n_live; ++k) std::free(live[k]);

  if (count_faults) {
    report("lat_faulting_mallocs", 100.0 * double(faulting_mallocs) / double(mallocs), "%");
    return 0;
  }
  std::printf("# mallocs_timed %zu tsc_per_ns %.4f timer_overhead_ns %.2f\n", samples.size(), per_ns,
              overhead_ticks / per_ns);
  double sum = 0;
  for (const Sample& s : samples) sum += s.ticks;
  std::sort(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) { return a.ticks < b.ticks; });
  auto pct = [&](double q) {
    const size_t idx = std::min(samples.size() - 1, size_t(q * double(samples.size())));
    return std::max(0.0, (double(samples[idx].ticks) - overhead_ticks) / per_ns);
  };
  // Which sizes the slowest 0.1% of calls asked for, against their share of
  // all calls: points at the slow path behind the tail.
  {
    const uint32_t bounds[] = {1024, 16 * 1024, 128 * 1024, UINT32_MAX};
    const char* names[] = {"<=1KiB", "<=16KiB", "<=128KiB", ">128KiB"};
    size_t all[4] = {}, tail[4] = {};
    const size_t tail_from = size_t(0.999 * double(samples.size()));
    for (size_t i = 0; i < samples.size(); ++i) {
      int b = 0;
      while (samples[i].size > bounds[b]) ++b;
      ++all[b];
      if (i >= tail_from) ++tail[b];
    }
    std::printf("# slowest 0.1%% by size (share of tail / share of all):");
    for (int b = 0; b < 4; ++b)
      std::printf(" %s %.1f%%/%.1f%%", names[b], 100.0 * double(tail[b]) / double(samples.size() - tail_from),
                  100.0 * double(all[b]) / double(samples.size()));
    std::printf("\n");
  }
  report("lat_p50", pct(0.50), "ns");
  report("lat_p99", pct(0.99), "ns");
  report("lat_p999", pct(0.999), "ns");
  report("lat_p9999", pct(0.9999), "ns");
  // The maximum is whatever the scheduler did to one call: a comment, not a result.
  std::printf("# max %.0f ns\n", pct(1.0));
  // The TSC advances in steps of ~10 ns on some machines (this VM's): the
  // percentiles are quantised to that step, the mean is not.
  report("lat_mean", std::max(0.0, (sum / double(samples.size()) - overhead_ticks) / per_ns), "ns");
  return 0;
}
