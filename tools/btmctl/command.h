// btmctl's subcommands.  Each top-level word (`btmctl config ...`) is one
// Command implemented in its own file and listed in main.cpp's table, so a
// new one (enable, disable, status) is a new file plus one row.
#pragma once

#include <span>
#include <string_view>

namespace btmctl {

using Args = std::span<char* const>;  // the words after the command's name

struct Command {
    std::string_view name;
    std::string_view usage;  // one or more "btmctl NAME ..." lines for --help
    int (*run)(Args args);   // returns the exit status
};

inline constexpr int kExitOk = 0;
inline constexpr int kExitProblems = 1;
inline constexpr int kExitUsage = 2;

// Prints "btmctl: MESSAGE" and a hint to stderr; returns kExitUsage.
int usage_error(std::string_view message);

int run_config(Args args);
extern const std::string_view kConfigUsage;
int run_enable(Args args);
extern const std::string_view kEnableUsage;
int run_disable(Args args);
extern const std::string_view kDisableUsage;
int run_status(Args args);
extern const std::string_view kStatusUsage;
int run_heap(Args args);
extern const std::string_view kHeapUsage;
int run_metrics(Args args);
extern const std::string_view kMetricsUsage;

}  // namespace btmctl
