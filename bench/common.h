// Shared helpers for the benchmark programs.
//
// Every benchmark is a plain C++ program that calls malloc/free/new/delete and is
// run under each allocator by LD_PRELOAD (glibc: no preload). Nothing here links
// or knows about btmalloc. Results go to stdout as `metric value unit` lines;
// lines starting with '#' are comments that bench/run.sh keeps in its logs.
#pragma once

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <ctime>
#include <string_view>
#include <thread>
#include <vector>

namespace bench {

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

inline double seconds_since(uint64_t start_ns) { return double(now_ns() - start_ns) * 1e-9; }

// Sleeps until `next` advanced by step_ns (CLOCK_MONOTONIC): a sampler's
// period that does not drift by the time each sample takes.
inline void sleep_to_next(timespec& next, long step_ns) {
  next.tv_nsec += step_ns;
  while (next.tv_nsec >= 1000000000) {
    next.tv_nsec -= 1000000000;
    ++next.tv_sec;
  }
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
}

// Keeps the compiler from proving an allocation dead and deleting a
// malloc/free pair (GCC does that for malloc and for new/delete).
inline void escape(void* p) { asm volatile("" : : "r"(p) : "memory"); }

// xorshift64*: a few cycles per number, so the generator does not dominate a
// loop whose allocator work costs a few nanoseconds.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull | 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  // Uniform in [0, n) without division (Lemire's multiply-shift).
  uint32_t below(uint32_t n) { return uint32_t((uint64_t(uint32_t(next() >> 32)) * n) >> 32); }
  double unit() { return double(next() >> 11) * 0x1.0p-53; }
};

// Eight distinct call sites of malloc (for partitioning by call site).  The
// programs that use them compile with -fno-ipa-icf, so that identical-code
// folding does not merge them into one.
inline volatile uint32_t g_site_sink;

template <int N>
__attribute__((noinline)) void* site_alloc(size_t n) {
  g_site_sink = N;
  void* p = std::malloc(n);
  escape(p);
  return p;
}

using SiteFn = void* (*)(size_t);
inline constexpr SiteFn kSites[8] = {site_alloc<0>, site_alloc<1>, site_alloc<2>, site_alloc<3>,
                                     site_alloc<4>, site_alloc<5>, site_alloc<6>, site_alloc<7>};

// "Mixed small sizes" as the benchmarks use the phrase: skewed towards the
// small end the way real heaps are (half 16-64 B, 30% 65-256 B, 20% 257-1024 B).
inline uint32_t mixed_small_size(Rng& rng) {
  uint32_t r = rng.below(10);
  if (r < 5) return 16 + rng.below(64 - 16 + 1);
  if (r < 8) return 65 + rng.below(256 - 65 + 1);
  return 257 + rng.below(1024 - 257 + 1);
}

inline uint64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// Time-sliced measurement for the single-thread loops. The run is cut into
// `slices` slices of equal length; each slice runs whole batches until its time
// is up, and the fastest slice is the result. Time is the thread's CPU time,
// not wall time: on a shared 2-CPU machine the thread is descheduled now and
// then, which wall time would count and CPU time does not (nothing in these
// loops blocks, so the two agree on an idle machine). What preemption still
// costs (cold caches afterwards) only ever adds time, hence the fastest
// slice. The wall-clock mean over the whole run is kept as a comment.
struct SlicedResult {
  double best_ns_per_op;
  double mean_wall_ns_per_op;
};

template <class Batch>
SlicedResult run_sliced(double total_s, int slices, uint64_t ops_per_batch, Batch&& batch) {
  const uint64_t slice_ns = uint64_t(total_s / slices * 1e9);
  double best = 1e300;
  uint64_t all_ops = 0;
  const uint64_t wall_start = now_ns();
  for (int i = 0; i < slices; ++i) {
    uint64_t ops = 0;
    const uint64_t start = thread_cpu_ns();
    uint64_t elapsed;
    do {
      batch();
      ops += ops_per_batch;
      elapsed = thread_cpu_ns() - start;
    } while (elapsed < slice_ns);
    best = std::min(best, double(elapsed) / double(ops));
    all_ops += ops;
  }
  return {best, double(now_ns() - wall_start) / double(all_ops)};
}

// Windowed measurement for the multi-threaded loops: worker threads publish
// their progress in their own Counter, and the caller samples the sum every
// window. Throughput across threads is a wall-clock quantity (CPU time would
// hide a thread blocked on a lock), so on a busy machine these are noisier;
// the best window is the result, for the same reason as above.
struct alignas(64) Counter {
  std::atomic<uint64_t> n{0};
  void add(uint64_t k) { n.store(n.load(std::memory_order_relaxed) + k, std::memory_order_relaxed); }
};

struct WindowedResult {
  double best_per_s;
  double mean_per_s;
};

inline WindowedResult sample_windows(const Counter* counters, int n_counters, double total_s, int windows) {
  auto sum = [&] {
    uint64_t s = 0;
    for (int i = 0; i < n_counters; ++i) s += counters[i].n.load(std::memory_order_relaxed);
    return s;
  };
  const long window_ns = long(total_s / windows * 1e9);
  const uint64_t first = sum(), t_first = now_ns();
  uint64_t prev = first, t_prev = t_first;
  double best = 0;
  for (int w = 0; w < windows; ++w) {
    timespec ts{window_ns / 1000000000, window_ns % 1000000000};
    nanosleep(&ts, nullptr);
    const uint64_t cur = sum(), t = now_ns();
    best = std::max(best, double(cur - prev) * 1e9 / double(t - t_prev));
    prev = cur;
    t_prev = t;
  }
  return {best, double(prev - first) * 1e9 / double(t_prev - t_first)};
}

// Pins the calling thread to CPU `cpu % CPUs available`. The threaded
// benchmarks put their threads on different CPUs: left to itself the scheduler
// sometimes stacks both on one CPU of this 2-CPU machine, and a handoff
// benchmark then measures the scheduler (throughput drops 5x, run to run).
inline void pin_to_cpu(int cpu) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  const int n = CPU_COUNT(&allowed);
  if (n < 2) return;
  int want = cpu % n;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &allowed)) continue;
    if (want-- == 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      pthread_setaffinity_np(pthread_self(), sizeof one, &one);
      return;
    }
  }
}

inline void report(const char* metric, double value, const char* unit) {
  std::printf("%s %.6g %s\n", metric, value, unit);
  std::fflush(stdout);
}

// Fixed work on `threads` threads, thread t pinned to CPU t: worker(t, begin)
// does its set-up, calls begin(), which waits until every worker is ready,
// then does the timed work.  Reports `name` (wall ms from the start signal to
// the last worker's end) and `name`_cpu (the workers' CPU ms after begin(),
// summed: a busy machine disturbs it less).
template <class Worker>
void run_timed_workers(const char* name, int threads, Worker&& worker) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<uint64_t> cpu_ns{0};
  auto body = [&](int t) {
    pin_to_cpu(t);
    uint64_t cpu_start = 0;
    auto begin = [&] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      cpu_start = thread_cpu_ns();
    };
    worker(t, begin);
    cpu_ns.fetch_add(thread_cpu_ns() - cpu_start);
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  while (ready.load() < threads) std::this_thread::yield();
  const uint64_t start = now_ns();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  report(name, double(now_ns() - start) * 1e-6, "ms");
  char cpu_name[64];
  std::snprintf(cpu_name, sizeof cpu_name, "%s_cpu", name);
  report(cpu_name, double(cpu_ns.load()) * 1e-6, "ms");
}

// Which object provides malloc in this process: lets run.sh check that the
// preload it asked for really took effect.
inline void report_provider() {
  Dl_info info{};
  void* sym = reinterpret_cast<void*>(&malloc);
  if (dladdr(sym, &info) && info.dli_fname)
    std::printf("# malloc_provider %s\n", info.dli_fname);
  else
    std::printf("# malloc_provider unknown\n");
  std::fflush(stdout);
}

// Reads a small /proc file into buf (NUL-terminated) with plain syscalls, so
// the measurement itself never calls malloc (stdio would); false on error.
inline bool read_proc(const char* path, char* buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  return true;
}

// Resident set size from /proc/self/statm.
inline uint64_t rss_bytes() {
  static const long page = sysconf(_SC_PAGESIZE);
  char buf[128];
  if (!read_proc("/proc/self/statm", buf, sizeof buf)) return 0;
  char* p = buf;
  std::strtoull(p, &p, 10);  // size
  uint64_t resident = std::strtoull(p, &p, 10);
  return resident * uint64_t(page);
}

// Minimal `--name value` option parsing; unknown options are an error so a
// typo in run.sh cannot silently run the default.
class Args {
 public:
  Args(int argc, char** argv, std::initializer_list<const char*> known) : argc_(argc), argv_(argv) {
    for (int i = 1; i < argc; i += 2) {
      bool ok = false;
      for (const char* k : known) ok |= std::string_view(argv[i]) == k;
      if (!ok || i + 1 >= argc) {
        std::fprintf(stderr, "%s: bad or incomplete option '%s'; known:", argv[0], argv[i]);
        for (const char* k : known) std::fprintf(stderr, " %s", k);
        std::fprintf(stderr, "\n");
        std::exit(2);
      }
    }
  }
  const char* str(const char* name, const char* def) const {
    for (int i = 1; i + 1 < argc_; i += 2)
      if (std::string_view(argv_[i]) == name) return argv_[i + 1];
    return def;
  }
  double num(const char* name, double def) const {
    const char* s = str(name, nullptr);
    return s ? std::strtod(s, nullptr) : def;
  }
  long integer(const char* name, long def) const {
    const char* s = str(name, nullptr);
    return s ? std::strtol(s, nullptr, 0) : def;
  }

 private:
  int argc_;
  char** argv_;
};

}  // namespace bench
