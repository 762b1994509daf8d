// local: thread-local allocation throughput.
//
// `--threads` threads each allocate a batch of `--batch` objects of mixed small
// sizes, write to each, and free the whole batch themselves (in allocation
// order), over and over for `--time` seconds. No memory crosses threads, so this
// is the allocator's per-thread fast path plus its refill/flush path. Reports
// millions of objects (one malloc + one free each) per second, summed over
// threads.
#include <atomic>
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
  std::vector<double> rate(threads);
  uint64_t start = 0;

  auto worker = [&](int t) {
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
    uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      one_batch();
      n += batch;
    }
    rate[t] = double(n) / seconds_since(start);
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  while (ready.load() < threads) std::this_thread::yield();
  start = now_ns();
  go.store(true, std::memory_order_release);
  timespec ts{time_t(target_s), long((target_s - double(time_t(target_s))) * 1e9)};
  nanosleep(&ts, nullptr);
  stop.store(true);
  for (auto& th : pool) th.join();

  double total = 0;
  for (double r : rate) total += r;
  char name[32];
  std::snprintf(name, sizeof name, "local_%dt", threads);
  report(name, total * 1e-6, "Mops");
  return 0;
}
