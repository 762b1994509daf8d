// large_reuse: large buffers replaced at random (issue 21, item 1).
//
// Keeps `--buffers` live buffers of `--min-mib` to `--max-mib` MiB (uniform,
// page granular) and replaces one at random `--replacements` times; every new
// buffer is value-initialised (`new char[n]()`, or calloc with `--api
// calloc`), so each replacement writes all of its bytes once.  An allocator
// that maps every large block afresh pays a page fault per page of every
// replacement; one that keeps freed blocks pays the clearing only.  Then
// everything is freed and the process stays idle for `--idle-s` seconds:
// what an allocator keeps cached shows in RSS there.
//
// A sampler thread reads /proc/self/statm every `--sample-ms` into a mapped
// array; `--series FILE` writes it out ("t_s rss_MiB live_MiB phase", as
// bench_burst does) for bench/plot_burst.sh.  Reports the loop's wall and
// CPU time, its minor page faults, peak RSS, and RSS at the end of the idle.
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <atomic>

#include "common.h"

using namespace bench;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;
enum Phase { kReplace, kIdle };
const char* const kPhaseName[] = {"replace", "idle"};

struct Sample {
  uint64_t t_ns, rss, live;
  int phase;
};

Sample* g_samples;
constexpr size_t kSampleCap = 1 << 16;
std::atomic<size_t> g_n_samples{0};
std::atomic<bool> g_stop{false};
std::atomic<int> g_phase{kReplace};
std::atomic<uint64_t> g_live{0}, g_max_rss{0};
uint64_t g_t0;
long g_sample_ns;

void* sampler(void*) {
  timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (!g_stop.load(std::memory_order_relaxed)) {
    uint64_t rss = rss_bytes();
    if (rss > g_max_rss.load(std::memory_order_relaxed)) g_max_rss.store(rss, std::memory_order_relaxed);
    size_t i = g_n_samples.load(std::memory_order_relaxed);
    if (i < kSampleCap) {
      g_samples[i] = {now_ns() - g_t0, rss, g_live.load(std::memory_order_relaxed),
                      g_phase.load(std::memory_order_relaxed)};
      g_n_samples.store(i + 1, std::memory_order_release);
    }
    sleep_to_next(next, g_sample_ns);
  }
  return nullptr;
}

uint64_t process_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

long minor_faults() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv,
            {"--buffers", "--min-mib", "--max-mib", "--replacements", "--api", "--idle-s", "--sample-ms", "--series",
             "--seed"});
  const uint32_t nbuf = uint32_t(args.integer("--buffers", 20));
  const size_t min_b = size_t(args.integer("--min-mib", 5)) << 20;
  const size_t max_b = size_t(args.integer("--max-mib", 25)) << 20;
  const long reps = args.integer("--replacements", 2000);
  const std::string_view api = args.str("--api", "new");
  const double idle_s = args.num("--idle-s", 5);
  g_sample_ns = long(args.num("--sample-ms", 20) * 1e6);
  const char* series = args.str("--series", "");
  if (nbuf == 0 || min_b == 0 || max_b < min_b || (api != "new" && api != "calloc")) {
    std::fprintf(stderr, "large_reuse: need --buffers >= 1, 0 < --min-mib <= --max-mib, --api new|calloc\n");
    return 2;
  }
  const bool use_calloc = api == "calloc";
  report_provider();
  Rng rng(uint64_t(args.integer("--seed", 1)));
  const uint32_t pages = uint32_t((max_b - min_b) / 4096);
  auto pick = [&] { return min_b + size_t(rng.below(pages + 1)) * 4096; };
  auto make = [&](size_t n) -> char* {
    char* p = use_calloc ? static_cast<char*>(std::calloc(1, n)) : new char[n]();
    if (!p) {
      std::fprintf(stderr, "large_reuse: out of memory for %zu bytes\n", n);
      std::exit(1);
    }
    return p;
  };
  auto drop = [&](char* p) {
    if (use_calloc) std::free(p);
    else delete[] p;
  };

  void* m = mmap(nullptr, kSampleCap * sizeof(Sample), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 1;
  g_samples = static_cast<Sample*>(m);
  char* bufs[256];
  size_t sizes[256];
  if (nbuf > 256) return 2;
  g_t0 = now_ns();
  pthread_t th;
  pthread_create(&th, nullptr, sampler, nullptr);

  uint64_t live = 0, sum = 0;
  for (uint32_t i = 0; i < nbuf; ++i) {
    sizes[i] = pick();
    bufs[i] = make(sizes[i]);
    live += sizes[i];
  }
  g_live = live;
  const long f0 = minor_faults();
  const uint64_t c0 = process_cpu_ns(), t0 = now_ns();
  for (long r = 0; r < reps; ++r) {
    uint32_t i = rng.below(nbuf);
    drop(bufs[i]);
    live -= sizes[i];
    sizes[i] = pick();
    bufs[i] = make(sizes[i]);
    live += sizes[i];
    g_live.store(live, std::memory_order_relaxed);
    for (size_t off = 0; off < sizes[i]; off += 1 << 20) sum += uint8_t(bufs[i][off]);
  }
  const uint64_t t1 = now_ns(), c1 = process_cpu_ns();
  const long f1 = minor_faults();
  for (uint32_t i = 0; i < nbuf; ++i) drop(bufs[i]);
  g_live = 0;
  g_phase = kIdle;
  timespec ts{time_t(idle_s), long((idle_s - double(time_t(idle_s))) * 1e9)};
  nanosleep(&ts, nullptr);
  const uint64_t idle_rss = rss_bytes();
  g_stop = true;
  pthread_join(th, nullptr);
  if (sum) std::printf("# nonzero bytes read: %llu\n", (unsigned long long)sum);

  if (*series) {
    FILE* f = std::fopen(series, "w");
    if (!f) {
      std::perror(series);
      return 1;
    }
    std::fprintf(f, "# t_s rss_MiB live_MiB phase\n");
    size_t n = g_n_samples.load(std::memory_order_acquire);
    for (size_t i = 0; i < n; ++i)
      std::fprintf(f, "%.4f %.3f %.3f %s\n", double(g_samples[i].t_ns) * 1e-9, double(g_samples[i].rss) / kMiB,
                   double(g_samples[i].live) / kMiB, kPhaseName[g_samples[i].phase]);
    std::fclose(f);
  }
  std::string_view tag = use_calloc ? "large_calloc" : "large_reuse";
  auto put = [&](const char* what, double v, const char* unit) {
    char name[64];
    std::snprintf(name, sizeof name, "%.*s_%s", int(tag.size()), tag.data(), what);
    report(name, v, unit);
  };
  put("wall", double(t1 - t0) / 1e6, "ms");
  put("cpu", double(c1 - c0) / 1e6, "ms");
  put("faults", double(f1 - f0), "count");
  put("peak_rss", double(g_max_rss.load()) / kMiB, "MiB");
  put("idle_rss", double(idle_rss) / kMiB, "MiB");
  return 0;
}
