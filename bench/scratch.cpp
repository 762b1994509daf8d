// scratch: objects handed from one owner to another, then touched and freed
// (the shape of the classic "cache-scratch" test of false sharing).
//
// The main thread allocates one object of `--size` bytes per worker, back to
// back, so neighbours may share a cache line, and hands object t to worker t.
// Each worker frees the object it was handed (a free by a thread that did not
// allocate it), then `--iterations` times allocates an object of the same
// size, writes and reads every byte of it `--reps` times, and frees it.  An
// allocator that hands a worker memory on a cache line another worker writes
// pays for it in every write; one that keeps a worker on its own lines does
// not.  Worker t runs on CPU t (common.h, pin_to_cpu).  Reports the wall time
// of the workers, from the start signal to the last one's end, in ms, and
// (`_cpu`) their CPU time summed, which a busy machine disturbs less; the
// allocator's own work is a small part of either, where its memory lands is
// all.
#include "common.h"

using namespace bench;

namespace {

// The touch loop: a store and a load of each byte through a volatile copy,
// so the compiler keeps every access and the loop's speed is that of the
// cache line the object sits on.
void touch(char* obj, size_t size, long reps) {
  for (long r = 0; r < reps; ++r) {
    for (size_t k = 0; k < size; ++k) {
      obj[k] = char(k);
      volatile char ch = obj[k];
      ch = char(ch + 1);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv, {"--threads", "--size", "--iterations", "--reps"});
  const int threads = int(args.integer("--threads", 1));
  const size_t size = size_t(args.integer("--size", 8));
  const long iterations = args.integer("--iterations", 1000);
  const long reps = args.integer("--reps", 20000);
  if (threads < 1 || size < 1 || iterations < 1 || reps < 1) {
    std::fprintf(stderr, "%s: --threads, --size, --iterations and --reps must be positive\n", argv[0]);
    return 2;
  }
  report_provider();

  std::vector<char*> handed(size_t(threads), nullptr);
  for (auto& p : handed) p = new char[size];

  char name[32];
  std::snprintf(name, sizeof name, "scratch_%dt", threads);
  run_timed_workers(name, threads, [&](int t, auto begin) {
    begin();
    delete[] handed[size_t(t)];
    for (long i = 0; i < iterations; ++i) {
      char* obj = new char[size];
      touch(obj, size, reps);
      delete[] obj;
    }
  });
  return 0;
}
