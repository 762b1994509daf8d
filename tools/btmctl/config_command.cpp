// `btmctl config check|show|man|example`: the administrator's view of the
// configuration, through the same parser and loader the library runs.
#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "config/config.h"
#include "knob_docs.h"

extern char** environ;

namespace btmctl {

const std::string_view kConfigUsage =
    "  btmctl config check [FILE...]    validate FILEs (default: /etc/btmalloc.conf and\n"
    "                                   /etc/btmalloc.conf.d/*.conf, their owner and mode\n"
    "                                   too); prints FILE:LINE: REASON\n"
    "  btmctl config show [--program NAME] [--no-env] [--secure]\n"
    "                                   effective values and where each comes from, for a\n"
    "                                   program named NAME (default: outside any [program]\n"
    "                                   section), with BTM_* variables unless --no-env, as a\n"
    "                                   setuid program would see them with --secure\n"
    "  btmctl config man                the knob section of btmalloc.conf(5), in roff\n"
    "  btmctl config example            an example /etc/btmalloc.conf with every default\n";

namespace {

namespace cfg = btm::config;

// Prints each diagnostic as FILE:LINE: REASON (FILE: REASON for a whole file
// or an environment variable) and counts them.
struct Printer {
    std::ostream* out;
    unsigned count = 0;

    static void report(void* ctx, const cfg::Diagnostic& d) {
        auto* self = static_cast<Printer*>(ctx);
        ++self->count;
        *self->out << (d.file ? d.file : "?");
        if (d.line) *self->out << ':' << d.line;
        *self->out << ": " << d.text << '\n';
    }
    cfg::Sink sink() { return {report, this}; }
};

int check(Args args) {
    for (const char* a : args)
        if (a[0] == '-' && a[1] != '\0') return usage_error(std::string("config check: unknown option ") + a);
    Printer printer{&std::cout};
    cfg::Options opt;
    opt.check_all = true;
    opt.max_warnings = 0;
    opt.sink = printer.sink();
    cfg::Values values;
    cfg::Origin origin;
    cfg::set_defaults(&values, &origin);
    if (args.empty()) {
        cfg::load_files(nullptr, opt, &values, &origin);
    } else {
        opt.any_owner = true;  // drafts: their contents, not where they are yet
        for (const char* file : args) cfg::load_file(file, true, opt, &values, &origin);
    }
    return printer.count ? kExitProblems : kExitOk;
}

int show(Args args) {
    cfg::Options opt;
    bool use_env = true;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a == "--program") {
            if (i + 1 >= args.size()) return usage_error("config show: --program needs a NAME");
            opt.program = args[++i];
        } else if (a.substr(0, 10) == "--program=") {
            opt.program = args[i] + 10;
        } else if (a == "--no-env") {
            use_env = false;
        } else if (a == "--secure") {
            opt.secure = true;
        } else {
            return usage_error("config show: unexpected argument '" + std::string(a) + "'");
        }
    }
    // Without --program no section applies; an empty name matches only "*".
    static const char kNoProgram[] = "";
    if (!opt.program) opt.program = kNoProgram;
    Printer printer{&std::cerr};
    opt.sink = printer.sink();
    opt.max_warnings = 0;
    cfg::Values values;
    cfg::Origin origin;
    cfg::load_with(use_env ? environ : nullptr, opt, &values, &origin);

    if (*opt.program) std::cout << "# effective configuration for program " << opt.program << '\n';
    else std::cout << "# effective configuration outside any [program] section\n";
    for (unsigned i = 0; i < cfg::kKnobCount; ++i) {
        char value[32];
        cfg::format_value(i, cfg::field(values, i), value, sizeof value);
        std::ostringstream line;
        line << cfg::kKnobs[i].key << " = " << value;
        std::cout << std::left << std::setw(32) << line.str() << "# ";
        switch (origin.source[i]) {
            case cfg::kDefault: std::cout << "default"; break;
            case cfg::kEnvironment: std::cout << "environment"; break;
            case cfg::kFile: std::cout << origin.file[i] << ':' << origin.line[i]; break;
        }
        std::cout << '\n';
    }
    return kExitOk;
}

}  // namespace

int run_config(Args args) {
    if (args.empty()) return usage_error("config: expected check, show, man or example");
    std::string_view sub = args[0];
    Args rest = args.subspan(1);
    if (sub == "check") return check(rest);
    if (sub == "show") return show(rest);
    if ((sub == "man" || sub == "example") && !rest.empty())
        return usage_error("config " + std::string(sub) + ": takes no arguments");
    if (sub == "man") {
        std::cout << man_knob_table();
        return kExitOk;
    }
    if (sub == "example") {
        std::cout << example_config();
        return kExitOk;
    }
    if (sub == "--help" || sub == "-h") {
        std::cout << "Usage:\n" << kConfigUsage;
        return kExitOk;
    }
    return usage_error("config: unknown subcommand '" + std::string(sub) + "'");
}

}  // namespace btmctl
