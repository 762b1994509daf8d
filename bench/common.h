// Shared helpers for the benchmark programs.
//
// Every benchmark is a plain C++ program that calls malloc/free/new/delete and is
// run under each allocator by LD_PRELOAD (glibc: no preload). Nothing here links
// or knows about btmalloc. Results go to stdout as `metric value unit` lines;
// lines starting with '#' are comments that bench/run.sh keeps in its logs.
#pragma once

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <ctime>
#include <string_view>

namespace bench {

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

inline double seconds_since(uint64_t start_ns) { return double(now_ns() - start_ns) * 1e-9; }

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

// "Mixed small sizes" as the benchmarks use the phrase: skewed towards the
// small end the way real heaps are (half 16-64 B, 30% 65-256 B, 20% 257-1024 B).
inline uint32_t mixed_small_size(Rng& rng) {
  uint32_t r = rng.below(10);
  if (r < 5) return 16 + rng.below(64 - 16 + 1);
  if (r < 8) return 65 + rng.below(256 - 65 + 1);
  return 257 + rng.below(1024 - 257 + 1);
}

inline void report(const char* metric, double value, const char* unit) {
  std::printf("%s %.6g %s\n", metric, value, unit);
  std::fflush(stdout);
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

// Resident set size from /proc/self/statm, read with plain syscalls so the
// measurement itself never calls malloc (stdio would).
inline uint64_t rss_bytes() {
  static const long page = sysconf(_SC_PAGESIZE);
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
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
