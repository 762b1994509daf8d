// mesh: what btm_compact() (Mesh compaction, issue 19) gives back after a
// random mass free, on one thread (the only case it meshes without a write
// barrier; `--idle-thread 1` adds a sleeping thread, so that it takes the
// barrier's path).
//
// `--sizes 64` (the case) or `--sizes burst` (16-1024 B uniform from
// 8 call sites, the burst benchmark's mix): `--objects` objects, each filled
// with a pattern of its index, then a random `--keep` fraction survives.
// Reports RSS over the start and its ratio to the live bytes right after the
// shrink (after malloc_trim, so free pages count as given back) and after
// btm_compact(), the time btm_compact() took per MB it released, and checks
// every survivor byte for byte (exit 1 on a mismatch).  Without btmalloc
// preloaded (no btm_compact) the compaction step is skipped.
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>

#include <cstring>
#include <string_view>
#include <utility>

#include "common.h"

using namespace bench;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

uint8_t pattern(uint32_t index, uint32_t off) { return uint8_t(index * 131u + off * 7u + 1u); }

void* map_anon(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::exit(3);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, {"--objects", "--keep", "--sizes", "--seed", "--idle-thread"});
  const uint32_t n = uint32_t(args.integer("--objects", 1000000));
  const double keep = args.num("--keep", 0.10);
  const bool burst = std::string_view(args.str("--sizes", "64")) == "burst";
  Rng rng(uint64_t(args.integer("--seed", 1)));
  using CompactFn = size_t (*)();
  auto compact = reinterpret_cast<CompactFn>(dlsym(RTLD_DEFAULT, "btm_compact"));
  report_provider();
  // A second thread (asleep) makes btm_compact() use its write barrier, or
  // refuse where there is none.
  pthread_t idle;
  if (args.integer("--idle-thread", 0))
    pthread_create(&idle, nullptr, [](void*) -> void* { for (;;) pause(); }, nullptr);

  auto** ptr = static_cast<unsigned char**>(map_anon(size_t(n) * sizeof(void*)));
  auto* size = static_cast<uint32_t*>(map_anon(size_t(n) * sizeof(uint32_t)));
  malloc_trim(0);
  const uint64_t rss_start = rss_bytes();
  for (uint32_t i = 0; i < n; ++i) {
    size[i] = burst ? 16 + rng.below(1024 - 16 + 1) : 64;
    ptr[i] = static_cast<unsigned char*>(burst ? kSites[rng.below(8)](size[i]) : std::malloc(size[i]));
    for (uint32_t k = 0; k < size[i]; ++k) ptr[i][k] = pattern(i, k);
  }
  const uint64_t rss_peak = rss_bytes() - rss_start;
  // The survivors move to the front of the arrays (tag = original index)
  // and the arrays' tails are released: what RSS shows over the start is
  // the allocator's.
  auto* tag = static_cast<uint32_t*>(map_anon(size_t(n) * sizeof(uint32_t)));
  uint64_t live = 0;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (rng.unit() < keep) {
      live += size[i];
      ptr[kept] = ptr[i];
      size[kept] = size[i];
      tag[kept++] = i;
    } else {
      std::free(ptr[i]);
    }
  }
  for (auto [base, bytes] : {std::pair<void*, size_t>{ptr, sizeof(void*)}, {size, sizeof(uint32_t)}, {tag, sizeof(uint32_t)}}) {
    size_t used = (size_t(kept) * bytes + 4095) & ~size_t(4095);
    madvise(static_cast<char*>(base) + used, size_t(n) * bytes - used, MADV_DONTNEED);
  }
  malloc_trim(0);
  const uint64_t rss_shrink = rss_bytes() - rss_start;
  double compact_s = 0;
  size_t released = 0;
  if (compact) {
    const uint64_t t0 = now_ns();
    released = compact();
    compact_s = seconds_since(t0);
    malloc_trim(0);
  }
  const uint64_t rss_compact = rss_bytes() - rss_start;
  uint64_t bad = 0;
  for (uint32_t i = 0; i < kept; ++i)
    for (uint32_t k = 0; k < size[i]; ++k) bad += ptr[i][k] != pattern(tag[i], k);
  report("mesh_live", double(live) / kMiB, "MiB");
  report("mesh_peak_rss", double(rss_peak) / kMiB, "MiB");
  report("mesh_shrink_rss", double(rss_shrink) / kMiB, "MiB");
  report("mesh_shrink_ratio", double(rss_shrink) / double(live), "x");
  report("mesh_compact_rss", double(rss_compact) / kMiB, "MiB");
  report("mesh_compact_ratio", double(rss_compact) / double(live), "x");
  report("mesh_released", double(released) / kMiB, "MiB");
  report("mesh_compact_ms", compact_s * 1e3, "ms");
  if (released) report("mesh_ms_per_mb", compact_s * 1e3 / (double(released) / 1e6), "ms/MB");
  report("mesh_bad_bytes", double(bad), "bytes");
  for (uint32_t i = 0; i < kept; ++i) std::free(ptr[i]);
  return bad ? 1 : 0;
}
