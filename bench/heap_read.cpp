// heap_read: what `btmctl heap` costs the process it reads.  Makes 1,000
// call sites (site<N>, one malloc each) hold 1,000 blocks each (1 M live
// blocks, 48 B), then runs a hot malloc/free thread and, from outside,
// `btmctl heap PID --json` (argv[1]) five times.  Prints each run's read
// time (the tool's own measure of its process_vm_readv reads), its whole
// wall time (start, symbols, output), and the hot thread's rate in the
// half second before the runs against the rate while they ran.
// Run under LD_PRELOAD=libbtmalloc.so with BTM_PARTITIONS=1024
// BTM_PARTITION_MODE=intern BTM_PARTITION_AFTER=0 (one partition per site).
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common.h"

namespace {

constexpr size_t kSites = 1000, kPerSite = 1000, kSize = 48;

volatile uint32_t g_site_sink;

template <size_t N>
__attribute__((noinline)) void* site() {
  g_site_sink = uint32_t(N);  // a distinct body per site, so no two get folded
  return std::malloc(kSize);
}

template <size_t... I>
void fill(std::vector<void*>& out, std::index_sequence<I...>) {
  for (size_t k = 0; k < kPerSite; ++k) (out.push_back(site<I>()), ...);
}

double now() { return double(bench::now_ns()) * 1e-9; }

std::atomic<uint64_t> g_ops{0};
std::atomic<bool> g_stop{false};

void hot() {
  void* ring[64] = {};
  for (uint64_t i = 0; !g_stop.load(std::memory_order_relaxed); ++i) {
    std::free(ring[i & 63]);
    ring[i & 63] = std::malloc(64);
    g_ops.fetch_add(1, std::memory_order_relaxed);
  }
  for (void* p : ring) std::free(p);
}

// The read time the tool reports, and how many sites it listed.
double read_ms_of(const std::string& path, size_t* sites) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  *sites = 0;
  for (size_t p = 0; (p = s.find("{\"bytes\": ", p)) != std::string::npos; ++p) ++*sites;
  size_t p = s.find("\"read_ms\": ");
  return p == std::string::npos ? -1 : std::stod(s.substr(p + 11));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: heap_read BTMCTL\n");
    return 2;
  }
  std::vector<void*> live;
  live.reserve(kSites * kPerSite);
  fill(live, std::make_index_sequence<kSites>());
  std::thread t(hot);
  std::string out = "/tmp/heap_read." + std::to_string(getpid()) + ".json";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  uint64_t o0 = g_ops.load();
  double t0 = now();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  double before = double(g_ops.load() - o0) / (now() - t0) / 1e6;
  std::vector<double> reads, walls;
  size_t listed = 0;
  uint64_t o1 = g_ops.load();
  double t1 = now();
  for (int i = 0; i < 5; ++i) {
    double s = now();
    // posix_spawn, not fork: copying the page tables of 1 M blocks would
    // slow the hot thread by itself.
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::string pid = std::to_string(getpid());
    char* args[] = {argv[1], const_cast<char*>("heap"), pid.data(), const_cast<char*>("--json"),
                    const_cast<char*>("--top"), const_cast<char*>("2000"), nullptr};
    pid_t c;
    if (posix_spawn(&c, argv[1], &fa, nullptr, args, environ) != 0) return 1;
    posix_spawn_file_actions_destroy(&fa);
    int st = 0;
    waitpid(c, &st, 0);
    walls.push_back((now() - s) * 1e3);
    reads.push_back(read_ms_of(out, &listed));
  }
  double during = double(g_ops.load() - o1) / (now() - t1) / 1e6;
  g_stop = true;
  t.join();
  std::remove(out.c_str());
  std::sort(reads.begin(), reads.end());
  std::sort(walls.begin(), walls.end());
  std::printf("live_blocks=%zu sites=%zu listed=%zu read_ms_median=%.2f read_ms_max=%.2f wall_ms_median=%.1f "
              "hot_mops_before=%.1f hot_mops_during=%.1f\n",
              live.size(), kSites, listed, reads[2], reads[4], walls[2], before, during);
  for (void* p : live) std::free(p);
  return 0;
}
