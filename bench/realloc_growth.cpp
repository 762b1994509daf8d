// realloc_growth: blocks grown by realloc (issue 22 part 2), not run by run.sh.
//
//   bench_realloc_growth chain N    `ls -la`'s file table: 20.8 KB grown by
//                                   doubling to 332.8 KB, every byte written,
//                                   then freed; N times
//   bench_realloc_growth append N   a buffer appended to in 1 KiB steps from
//                                   1 KiB to 1 MiB, then freed; N times
// Prints the loop's CPU time (user + system), its minor page faults and the
// process's peak RSS: an allocator that leaves freed copies resident shows in
// the peak, one that grows blocks into fresh pages every time in the faults.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

double cpu_seconds(const rusage& u) {
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

unsigned char chain(int i) {
    size_t n = 20800;
    auto* p = static_cast<unsigned char*>(malloc(n));
    memset(p, i, n);
    while (n < 332800) {
        p = static_cast<unsigned char*>(realloc(p, 2 * n));
        memset(p + n, i, n);
        n *= 2;
    }
    unsigned char last = p[n - 1];
    free(p);
    return last;
}

unsigned char append(int i) {
    size_t n = 1024;
    auto* p = static_cast<unsigned char*>(malloc(n));
    memset(p, i, n);
    while (n < (size_t(1) << 20)) {
        p = static_cast<unsigned char*>(realloc(p, n + 1024));
        memset(p + n, i, 1024);
        n += 1024;
    }
    unsigned char last = p[n - 1];
    free(p);
    return last;
}

}  // namespace

int main(int argc, char** argv) {
    bool is_chain = argc == 3 && strcmp(argv[1], "chain") == 0;
    if (argc != 3 || (!is_chain && strcmp(argv[1], "append") != 0) || atoi(argv[2]) <= 0) {
        fprintf(stderr, "usage: bench_realloc_growth chain|append ITERATIONS\n");
        return 2;
    }
    int iterations = atoi(argv[2]);
    rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    unsigned sum = 0;
    for (int i = 0; i < iterations; ++i) sum += is_chain ? chain(i) : append(i);
    getrusage(RUSAGE_SELF, &after);
    printf("%s x %d: cpu %.3f s, minor faults %ld, peak rss %ld KB (check %u)\n", argv[1], iterations,
           cpu_seconds(after) - cpu_seconds(before), after.ru_minflt - before.ru_minflt, after.ru_maxrss, sum);
    return 0;
}
