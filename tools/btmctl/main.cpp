// btmctl: administer btmalloc on this machine.  main() only dispatches on the
// first word; the work lives in one file per command.
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

#include "command.h"

namespace btmctl {
namespace {

const Command kCommands[] = {
    {"config", kConfigUsage, run_config},
    {"enable", kEnableUsage, run_enable},
    {"disable", kDisableUsage, run_disable},
    {"status", kStatusUsage, run_status},
    {"heap", kHeapUsage, run_heap},
    {"metrics", kMetricsUsage, run_metrics},
};

void print_help(std::ostream& out) {
    out << "Usage:\n";
    for (const Command& c : kCommands) out << c.usage;
    out << "  btmctl --help\n"
           "  btmctl --version\n"
           "\n"
           "Exit status: 0 success, 1 problems found, 2 bad usage.\n"
           "See btmctl(8), btmalloc(7) and btmalloc.conf(5).\n";
}

}  // namespace

int usage_error(std::string_view message) {
    std::cerr << "btmctl: " << message << "\nTry 'btmctl --help'.\n";
    return kExitUsage;
}

}  // namespace btmctl

int main(int argc, char** argv) {
    using namespace btmctl;
    if (argc < 2) {
        print_help(std::cerr);
        return kExitUsage;
    }
    std::string_view word = argv[1];
    if (word == "--help" || word == "-h" || word == "help") {
        print_help(std::cout);
        return kExitOk;
    }
    if (word == "--version") {
        std::cout << "btmctl " BTMCTL_VERSION "\n";
        return kExitOk;
    }
    for (const Command& c : kCommands)
        if (c.name == word) return c.run(Args(argv + 2, size_t(argc - 2)));
    return usage_error("unknown command '" + std::string(word) + "'");
}
