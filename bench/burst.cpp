// burst: a burst of allocations and its aftermath, tracked in resident memory.
//
// The workload of issue 3, as a service sees it: a burst grows `--objects`
// objects of 16-1024 B (uniform) from 8 call sites and churns them, then a
// random 90% dies; the survivors keep being replaced for `--settle-s` seconds
// at a steady pace (the service's working set turning over), and finally
// everything is freed. No malloc_trim: whatever the allocator gives back, it
// gives back by itself.
//
// A sampler thread reads /proc/self/statm every `--sample-ms` and, with
// `--series FILE`, the time series (time, RSS, live bytes, phase) is written
// out for plotting. The main thread
// records RSS at each phase boundary: start, peak, right after the shrink,
// settled (end of the settle phase), drained (`--drain-wait-s` after freeing
// everything). `--btm-stats 1` also prints btmalloc's own counters there.
// Neither the sampler nor the bookkeeping allocates through
// malloc: the pointer table is mmap'd, and its unused tail is released after
// the shrink, so what RSS shows beyond the start is the allocator's.
#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>

#include "common.h"

using namespace bench;

namespace {

enum Phase : int { kStart, kGrow, kChurn, kShrink, kSettle, kDrain, kDone };
const char* const kPhaseName[] = {"start", "grow", "churn", "shrink", "settle", "drain", "done"};

struct Sample {
  uint64_t t_ns;
  uint64_t rss;
  uint64_t live;
  int phase;
};

std::atomic<int> g_phase{kStart};
std::atomic<bool> g_sampler_stop{false};
Sample* g_samples;
size_t g_sample_cap;
std::atomic<size_t> g_n_samples{0};
uint64_t g_t0;
long g_sample_ns;
std::atomic<uint64_t> g_max_rss{0};
std::atomic<uint64_t> g_live{0};  // written by the main thread only, read by the sampler

void note_rss(uint64_t rss) {
  uint64_t m = g_max_rss.load(std::memory_order_relaxed);
  while (rss > m && !g_max_rss.compare_exchange_weak(m, rss)) {
  }
}

void* sampler(void*) {
  timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (!g_sampler_stop.load(std::memory_order_relaxed)) {
    const uint64_t rss = rss_bytes();
    note_rss(rss);
    const size_t i = g_n_samples.load(std::memory_order_relaxed);
    if (i < g_sample_cap) {
      g_samples[i] = {now_ns() - g_t0, rss, g_live.load(std::memory_order_relaxed),
                      g_phase.load(std::memory_order_relaxed)};
      g_n_samples.store(i + 1, std::memory_order_release);
    }
    sleep_to_next(next, g_sample_ns);
  }
  return nullptr;
}

void* map_anon(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  return p;
}

void sleep_s(double s) {
  timespec ts{time_t(s), long((s - double(time_t(s))) * 1e9)};
  nanosleep(&ts, nullptr);
}

uint64_t measure_rss() {
  const uint64_t r = rss_bytes();
  note_rss(r);
  return r;
}

constexpr double kMiB = 1024.0 * 1024.0;

// With --btm-stats, where the preloaded allocator is btmalloc, its own view at
// each phase boundary (found by dlsym, so the program still runs under every
// peer): what explains an RSS figure.
bool g_btm_stats;
void btm_note(const char* phase) {
  if (!g_btm_stats) return;
  struct Stats {  // struct btm_stats v1 (include/btmalloc.h), copied by layout
    uint64_t version, allocated, large, committed, reserved, chunks, slabs, partitions, caches, slow,
        foreign, invalid, large_cached, rel_sync, rel_async, po_req, po_bytes, resident, dirty, free_chunks,
        thread, uring, future[4];
  } st{};
  auto fn = reinterpret_cast<int (*)(Stats*)>(dlsym(RTLD_DEFAULT, "btm_stats"));
  st.version = 1;
  if (!fn || fn(&st) != 0) return;
  std::printf("# btm %-8s rss=%.1f allocated=%.1f committed=%.1f dirty=%.1f slabs=%lu released=%.1f MiB\n", phase,
              double(st.resident) / kMiB, double(st.allocated) / kMiB, double(st.committed) / kMiB,
              double(st.dirty) / kMiB, (unsigned long)st.slabs, double(st.rel_sync + st.rel_async) / kMiB);
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv,
            {"--objects", "--churn-ops", "--keep", "--settle-s", "--settle-rate", "--drain-wait-s",
             "--sample-ms", "--series", "--seed", "--btm-stats"});
  const uint32_t n_objects = uint32_t(args.integer("--objects", 400000));
  const uint64_t churn_ops = uint64_t(args.integer("--churn-ops", n_objects));
  const double keep = args.num("--keep", 0.10);
  const double settle_s = args.num("--settle-s", 3.0);
  const double settle_rate = args.num("--settle-rate", 200000);  // replacements per second
  const double drain_wait_s = args.num("--drain-wait-s", 1.0);
  const char* series_path = args.str("--series", nullptr);
  g_sample_ns = long(args.num("--sample-ms", 10) * 1e6);
  g_btm_stats = args.integer("--btm-stats", 0) != 0;
  report_provider();

  Rng rng(uint64_t(args.integer("--seed", 1)));
  auto draw_size = [&] { return uint32_t(16 + rng.below(1024 - 16 + 1)); };
  uint64_t live_bytes = 0;
  auto alloc_one = [&] {
    const uint32_t size = draw_size();
    char* p = static_cast<char*>(kSites[rng.below(8)](size));
    std::memset(p, 0x42, size);
    std::memcpy(p, &size, sizeof size);  // free needs the size back for live accounting
    live_bytes += size;
    g_live.store(live_bytes, std::memory_order_relaxed);
    return p;
  };
  auto free_one = [&](char* p) {
    uint32_t size;
    std::memcpy(&size, p, sizeof size);
    live_bytes -= size;
    g_live.store(live_bytes, std::memory_order_relaxed);
    std::free(p);
  };

  g_sample_cap = 1u << 18;
  g_samples = static_cast<Sample*>(map_anon(g_sample_cap * sizeof(Sample)));
  g_t0 = now_ns();
  pthread_t sampler_thread;
  pthread_create(&sampler_thread, nullptr, sampler, nullptr);
  sleep_s(0.1);
  const uint64_t rss_start = measure_rss();

  const size_t table_bytes = (size_t(n_objects) * sizeof(char*) + 4095) & ~size_t(4095);
  char** table = static_cast<char**>(map_anon(table_bytes));

  const uint64_t t_work = now_ns();
  g_phase = kGrow;
  for (uint32_t i = 0; i < n_objects; ++i) table[i] = alloc_one();
  g_phase = kChurn;
  for (uint64_t i = 0; i < churn_ops; ++i) {
    const uint32_t k = rng.below(n_objects);
    free_one(table[k]);
    table[k] = alloc_one();
  }
  measure_rss();

  // Free a random 90%: a partial Fisher-Yates shuffle picks the victims.
  g_phase = kShrink;
  const uint32_t n_keep = uint32_t(double(n_objects) * keep);
  const uint32_t n_free = n_objects - n_keep;
  for (uint32_t i = 0; i < n_free; ++i) {
    std::swap(table[i], table[i + rng.below(n_objects - i)]);
    free_one(table[i]);
  }
  std::memmove(table, table + n_free, size_t(n_keep) * sizeof(char*));
  const size_t keep_bytes = (size_t(n_keep) * sizeof(char*) + 4095) & ~size_t(4095);
  madvise(reinterpret_cast<char*>(table) + keep_bytes, table_bytes - keep_bytes, MADV_DONTNEED);
  const double work_s = seconds_since(t_work);
  const uint64_t rss_shrink = measure_rss();
  btm_note("shrink");
  const uint64_t live_shrink = live_bytes;

  // Settle: replace survivors at a steady pace, in 1 ms ticks.
  g_phase = kSettle;
  const uint32_t per_tick = std::max<uint32_t>(1, uint32_t(settle_rate / 1000.0));
  const uint64_t settle_end = now_ns() + uint64_t(settle_s * 1e9);
  timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (now_ns() < settle_end) {
    for (uint32_t j = 0; j < per_tick; ++j) {
      const uint32_t k = rng.below(n_keep);
      free_one(table[k]);
      table[k] = alloc_one();
    }
    next.tv_nsec += 1000000;
    if (next.tv_nsec >= 1000000000) {
      next.tv_nsec -= 1000000000;
      ++next.tv_sec;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
  }
  const uint64_t rss_settled = measure_rss();
  btm_note("settled");
  const uint64_t live_settled = live_bytes;

  g_phase = kDrain;
  for (uint32_t i = 0; i < n_keep; ++i) free_one(table[i]);
  munmap(table, table_bytes);
  const uint64_t rss_drained_now = measure_rss();
  sleep_s(drain_wait_s);
  const uint64_t rss_drained = measure_rss();
  btm_note("drained");

  g_phase = kDone;
  sleep_s(double(g_sample_ns) * 2e-9);
  g_sampler_stop = true;
  pthread_join(sampler_thread, nullptr);

  if (series_path) {
    FILE* f = std::fopen(series_path, "w");
    if (!f) {
      std::perror(series_path);
      return 1;
    }
    std::fprintf(f, "# t_s rss_MiB live_MiB phase\n");
    const size_t n = g_n_samples.load();
    for (size_t i = 0; i < n; ++i)
      std::fprintf(f, "%.4f %.3f %.3f %s\n", double(g_samples[i].t_ns) * 1e-9, double(g_samples[i].rss) / kMiB,
                   double(g_samples[i].live) / kMiB, kPhaseName[g_samples[i].phase]);
    std::fclose(f);
  }

  report("burst_start_rss", double(rss_start) / kMiB, "MiB");
  report("burst_peak_rss", double(g_max_rss.load()) / kMiB, "MiB");
  report("burst_shrink_rss", double(rss_shrink) / kMiB, "MiB");
  report("burst_shrink_ratio", double(rss_shrink) / double(live_shrink), "x");
  report("burst_settled_rss", double(rss_settled) / kMiB, "MiB");
  report("burst_settled_live", double(live_settled) / kMiB, "MiB");
  report("burst_settled_ratio", double(rss_settled) / double(live_settled), "x");
  report("burst_drained_now_rss", double(rss_drained_now) / kMiB, "MiB");
  report("burst_drained_rss", double(rss_drained) / kMiB, "MiB");
  report("burst_drained_over_start", double(rss_drained - std::min(rss_drained, rss_start)) / kMiB, "MiB");
  report("burst_work_time", work_s, "s");
  return 0;
}
