// runprog: run a command and report its wall time and peak resident set.
//
//   runprog --name NAME [--repeat N] [--preload LIB] -- command args...
//
// The command runs N times in a row (posix_spawn + wait4); runprog itself is
// never preloaded: LD_PRELOAD is set (or, with `--preload ""`, removed) only in
// the child's environment. The child's stdout goes to /dev/null, its stderr is
// passed through. Reports NAME_wall (mean ms per run) and NAME_maxrss (the
// largest ru_maxrss of any run, which wait4 takes over the child and the
// descendants it waited for, e.g. gcc's cc1).
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <string>
#include <string_view>

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
  const uint64_t start = now_ns();
  for (long i = 0; i < repeat; ++i) {
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
    max_rss_kib = std::max(max_rss_kib, ru.ru_maxrss);
  }
  const double wall_ms = double(now_ns() - start) * 1e-6 / double(repeat);

  report((name + "_wall").c_str(), wall_ms, "ms");
  report((name + "_maxrss").c_str(), double(max_rss_kib) / 1024.0, "MiB");
  return 0;
}
