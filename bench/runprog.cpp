// runprog: run a command and report its wall time and peak resident set.
//
//   runprog --name NAME [--repeat N] [--preload LIB] -- command args...
//
// The command runs N times in a row (posix_spawn + wait4); runprog itself is
// never preloaded: LD_PRELOAD is set (or, with `--preload ""`, removed) only in
// the child's environment. The child's stdout goes to /dev/null, its stderr is
// passed through. Reports NAME_wall (the median wall time of a run, in ms: a
// noisy machine's interference lands on a few runs, the median ignores them),
// NAME_cpu and NAME_sys (mean user+system and system-only CPU time of a run, ms,
// the command's descendants included), NAME_minflt (mean minor page faults of a
// run: what the allocator maps and touches, and steadier than time) and
// NAME_maxrss (the largest ru_maxrss of any run, which wait4 takes
// over the child and the descendants it waited for, e.g. gcc's cc1).
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "common.h"

extern char** environ;

using namespace bench;

int main(int argc, char** argv) {
  int split = 1;
  while (split < argc && std::string_view(argv[split]) != "--") ++split;
  if (split + 1 >= argc) {
    std::fprintf(stderr, "usage: %s --name NAME [--repeat N] [--preload LIB] -- command args...\n", argv[0]);
    return 2;
  }
  Args args(split, argv, {"--name", "--repeat", "--preload"});
  const std::string name = args.str("--name", "prog");
  const long repeat = std::max(1L, args.integer("--repeat", 1));
  const char* preload = args.str("--preload", nullptr);
  if (preload && *preload)
    setenv("LD_PRELOAD", preload, 1);
  else if (preload)
    unsetenv("LD_PRELOAD");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);

  long max_rss_kib = 0;
  double cpu_s = 0, sys_s = 0, minflt = 0;
  std::vector<double> wall_ms(size_t(repeat), 0.0);
  const uint64_t start = now_ns();
  for (long i = 0; i < repeat; ++i) {
    const uint64_t run_start = now_ns();
    pid_t pid;
    int err = posix_spawnp(&pid, argv[split + 1], &actions, nullptr, argv + split + 1, environ);
    if (err) {
      std::fprintf(stderr, "runprog: cannot run %s: %s\n", argv[split + 1], std::strerror(err));
      return 127;
    }
    int status;
    rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
      std::perror("wait4");
      return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      if (WIFSIGNALED(status))
        std::fprintf(stderr, "runprog: %s killed by signal %d\n", argv[split + 1], WTERMSIG(status));
      else
        std::fprintf(stderr, "runprog: %s exited with %d\n", argv[split + 1], WEXITSTATUS(status));
      return 1;
    }
    wall_ms[size_t(i)] = double(now_ns() - run_start) * 1e-6;
    max_rss_kib = std::max(max_rss_kib, ru.ru_maxrss);
    cpu_s += double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    sys_s += double(ru.ru_stime.tv_sec) + double(ru.ru_stime.tv_usec) * 1e-6;
    minflt += double(ru.ru_minflt);
  }
  const double mean_ms = double(now_ns() - start) * 1e-6 / double(repeat);
  std::sort(wall_ms.begin(), wall_ms.end());
  const double median_ms = repeat % 2 ? wall_ms[size_t(repeat / 2)]
                                      : (wall_ms[size_t(repeat / 2 - 1)] + wall_ms[size_t(repeat / 2)]) / 2;

  std::printf("# mean_wall %.4f ms\n", mean_ms);
  report((name + "_wall").c_str(), median_ms, "ms");
  report((name + "_cpu").c_str(), cpu_s * 1e3 / double(repeat), "ms");
  report((name + "_sys").c_str(), sys_s * 1e3 / double(repeat), "ms");
  report((name + "_minflt").c_str(), minflt / double(repeat), "faults");
  report((name + "_maxrss").c_str(), double(max_rss_kib) / 1024.0, "MiB");
  return 0;
}
