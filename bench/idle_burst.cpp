// idle_burst: what a daemon keeps between requests (issue 22 part 2).
//
// Builds `--kib` KiB of small blocks (64, 256 and 1,024 bytes in turn, each
// written), frees them all, then sleeps `--idle-s` seconds without calling
// the allocator, reading its anonymous RSS every 100 ms (file pages left
// out: the library code a first release faults in is shared under a
// machine-wide preload).  Reports anonymous RSS over the start (KiB) once
// built, right after the free, and at the end of the idle, and the
// milliseconds until it first came within `--slack-kib` of the start (-1:
// never).  glibc trims the top of its heap on the free; an allocator
// that ages its free pages needs something to run the aging while the
// process sleeps.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common.h"

using namespace bench;

namespace {

// RssAnon from /proc/self/status, in bytes.
uint64_t anon_bytes() {
  char buf[4096];
  if (!read_proc("/proc/self/status", buf, sizeof buf)) return 0;
  const char* p = std::strstr(buf, "RssAnon:");
  return p ? std::strtoull(p + 8, nullptr, 10) << 10 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, {"--kib", "--idle-s", "--slack-kib"});
  const size_t bytes = size_t(args.integer("--kib", 900)) << 10;
  const double idle_s = args.num("--idle-s", 5);
  const uint64_t slack = uint64_t(args.integer("--slack-kib", 256)) << 10;
  constexpr size_t kSizes[] = {64, 256, 1024};
  std::vector<void*> blocks;
  blocks.reserve(bytes / kSizes[0]);
  const uint64_t start = anon_bytes();
  size_t total = 0;
  for (size_t i = 0; total < bytes; ++i) {
    size_t n = kSizes[i % 3];
    void* p = std::malloc(n);
    if (!p) return 1;
    std::memset(p, 0x5a, n);
    blocks.push_back(p);
    total += n;
  }
  const uint64_t built = anon_bytes();
  for (void* p : blocks) std::free(p);
  const uint64_t freed = anon_bytes();
  const uint64_t t0 = now_ns();
  long back_ms = -1;
  uint64_t rss = freed;
  while (seconds_since(t0) < idle_s) {
    if (back_ms < 0 && rss <= start + slack) back_ms = long((now_ns() - t0) / 1000000);
    timespec ts{0, 100 * 1000 * 1000};
    nanosleep(&ts, nullptr);
    rss = anon_bytes();
  }
  auto over = [&](uint64_t v) { return v > start ? double(v - start) / 1024.0 : 0.0; };
  report("idle_burst_built", over(built), "KiB");
  report("idle_burst_freed", over(freed), "KiB");
  report("idle_burst_idle", over(rss), "KiB");
  report("idle_burst_back_ms", double(back_ms), "ms");
  return 0;
}
