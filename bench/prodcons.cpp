// prodcons: producer/consumer, every object freed by a thread that did not
// allocate it.
//
// The producer mallocs objects (`--size` bytes, or mixed small sizes with
// `--size 0`), writes to each, and passes the pointers through a lock-free
// single-producer/single-consumer ring; the consumer reads each object and
// frees it; each thread has a CPU of its own (common.h, pin_to_cpu). This is
// the allocator's cross-thread free path. Reports millions of objects
// transferred (one malloc + one remote free each) per second, in the best of 10
// time windows (common.h says why).
#include <emmintrin.h>

#include <sched.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common.h"

using namespace bench;

namespace {

// Head and tail on their own cache lines; each side also keeps a cached copy of
// the other's index so it only touches the shared line when it looks full/empty.
class SpscRing {
 public:
  explicit SpscRing(uint32_t capacity_pow2) : mask_(capacity_pow2 - 1), buf_(capacity_pow2) {}

  void push(void* p) {
    const uint64_t t = tail_.load(std::memory_order_relaxed);
    while (t - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (t - head_cache_ > mask_) backoff();
    }
    buf_[t & mask_] = p;
    tail_.store(t + 1, std::memory_order_release);
  }

  void* pop() {
    const uint64_t h = head_.load(std::memory_order_relaxed);
    while (h == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (h == tail_cache_) backoff();
    }
    void* p = buf_[h & mask_];
    head_.store(h + 1, std::memory_order_release);
    return p;
  }

 private:
  // Spin briefly, then yield: on a 2-CPU machine the other side may be
  // descheduled, and spinning through a whole time slice would measure the
  // scheduler instead of the allocator.
  static void backoff() {
    static thread_local uint32_t spins = 0;
    if (++spins % 128 == 0)
      sched_yield();
    else
      _mm_pause();
  }

  const uint64_t mask_;
  std::vector<void*> buf_;
  alignas(64) std::atomic<uint64_t> tail_{0};
  uint64_t head_cache_ = 0;  // producer's view of head_
  alignas(64) std::atomic<uint64_t> head_{0};
  uint64_t tail_cache_ = 0;  // consumer's view of tail_
};

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, {"--size", "--ring", "--time", "--seed"});
  const uint32_t fixed_size = uint32_t(args.integer("--size", 64));
  const uint32_t ring_size = uint32_t(args.integer("--ring", 1024));
  const double target_s = args.num("--time", 0.5);
  report_provider();

  constexpr uint32_t kSizes = 4096;
  std::vector<uint32_t> sizes(kSizes);
  Rng rng(uint64_t(args.integer("--seed", 1)));
  for (auto& s : sizes) s = fixed_size ? fixed_size : mixed_small_size(rng);

  SpscRing ring(ring_size);
  Counter consumed;
  std::atomic<bool> stop{false};
  uint64_t checksum = 0;

  std::thread consumer([&] {
    pin_to_cpu(1);
    uint64_t sum = 0;
    for (;;) {
      char* p = static_cast<char*>(ring.pop());
      if (!p) break;
      sum += uint8_t(p[0]);
      std::free(p);
      consumed.add(1);
    }
    checksum = sum;
  });
  std::thread producer([&] {
    pin_to_cpu(0);
    uint32_t si = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 4096; ++i) {
        char* p = static_cast<char*>(std::malloc(sizes[si++ & (kSizes - 1)]));
        p[0] = char(si);
        ring.push(p);
      }
    }
    ring.push(nullptr);
  });

  const WindowedResult r = sample_windows(&consumed, 1, target_s, 10);
  stop.store(true);
  producer.join();
  consumer.join();

  char name[32];
  if (fixed_size)
    std::snprintf(name, sizeof name, "prodcons_%uB", fixed_size);
  else
    std::snprintf(name, sizeof name, "prodcons_mixed");
  std::printf("# checksum %llu\n", static_cast<unsigned long long>(checksum));
  std::printf("# mean_over_run %.3f Mops\n", r.mean_per_s * 1e-6);
  report(name, r.best_per_s * 1e-6, "Mops");
  return 0;
}
