// Statistics and the call-site heap profile, built from counters the slow
// paths keep (nothing is counted on the fast paths).
#pragma once

#include <malloc.h>
#include <stdio.h>

#include "btmalloc.h"

namespace btm::stats {

void fill(struct btm_stats* out);
// Per-partition live bytes with each partition's first call site.
void profile(int fd);
struct mallinfo2 mallinfo2();
int write_info(FILE* out);

}  // namespace btm::stats
