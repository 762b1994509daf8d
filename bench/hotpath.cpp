// hotpath: `--n` malloc+free pairs of `--size` bytes, for callgrind.
//
// run.sh runs this under callgrind at two values of --n and divides the
// difference in instructions by the difference in pairs: start-up, the
// allocator's initialisation and process exit cancel out, and what is left is
// the instruction count of one malloc+free on the allocator's hot path.
// `--batch B` allocates B objects before freeing them (in allocation order),
// so the free list is exercised beyond one recycled slot.
#include <vector>

#include "common.h"

using namespace bench;

int main(int argc, char** argv) {
  Args args(argc, argv, {"--n", "--size", "--batch"});
  const long n = args.integer("--n", 1000000);
  const size_t size = size_t(args.integer("--size", 64));
  const long batch = std::max(1L, args.integer("--batch", 1));
  std::vector<void*> objs(size_t(batch), nullptr);
  for (long i = 0; i < n; i += batch) {
    for (long j = 0; j < batch; ++j) {
      objs[size_t(j)] = std::malloc(size);
      escape(objs[size_t(j)]);
    }
    for (long j = 0; j < batch; ++j) std::free(objs[size_t(j)]);
  }
  return 0;
}
