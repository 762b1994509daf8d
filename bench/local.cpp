// local: thread-local allocation throughput.
//
// `--threads` threads each allocate a batch of `--batch` objects of mixed small
// sizes, write to each, and free the whole batch themselves (in allocation
// order), over and over for `--time` seconds. No memory crosses threads, so this
// is the allocator's per-thread fast path plus its refill/flush path. Thread t
// runs on CPU t (common.h, pin_to_cpu). Reports
// millions of objects (one malloc + one free each) per second, summed over
// threads, in the best of 10 time windows (common.h says why).
#include <thread>
#include <vector>

#include "common.h"

using namespace bench;

int main(int argc, char** argv) {
  Args args(argc, argv, {"--threads", "--batch", "--time", "--seed"});
  const int threads = int(args.integer("--threads", 1));
  const uint32_t batch = uint32_t(args.integer("--batch", 256));
  const double target_s = args.num("--time", 0.5);
  const uint64_t seed = uint64_t(args.integer("--seed", 1));
  report_provider();

  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, stop{false};
  std::vector<Counter> done(threads);

  auto worker = [&](int t) {
    pin_to_cpu(t);
    constexpr uint32_t kSizes = 4096;
    std::vector<uint32_t> sizes(kSizes);
    Rng rng(seed + uint64_t(t) * 7919);
    for (auto& s : sizes) s = mixed_small_size(rng);
    std::vector<char*> objs(batch);
    uint32_t si = 0;
    auto one_batch = [&] {
      for (uint32_t i = 0; i < batch; ++i) {
        char* p = static_cast<char*>(std::malloc(sizes[si++ & (kSizes - 1)]));
        p[0] = char(i);
        objs[i] = p;
      }
      for (uint32_t i = 0; i < batch; ++i) std::free(objs[i]);
    };
    for (int w = 0; w < 64; ++w) one_batch();
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) {
    }
    while (!stop.load(std::memory_order_relaxed)) {
      one_batch();
      done[t].add(batch);
    }
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  while (ready.load() < threads) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  const WindowedResult r = sample_windows(done.data(), threads, target_s, 10);
  stop.store(true);
  for (auto& th : pool) th.join();

  char name[32];
  std::snprintf(name, sizeof name, "local_%dt", threads);
  std::printf("# mean_over_run %.3f Mops\n", r.mean_per_s * 1e-6);
  report(name, r.best_per_s * 1e-6, "Mops");
  return 0;
}
