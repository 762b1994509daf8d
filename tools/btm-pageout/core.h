// btm-pageout's pure parts: argument parsing, duration/size parsing, idle
// selection and the report (text and JSON).  Nothing here touches /proc or
// another process, so tests/pageout_tool checks it with made-up input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace btm_pageout {

inline constexpr int kExitOk = 0;
inline constexpr int kExitNothing = 1;  // nothing to do, or a partial failure
inline constexpr int kExitUsage = 2;

struct Options {
    std::vector<pid_t> pids;
    std::vector<std::string> units;
    bool all = false;
    std::optional<double> idle_for;  // seconds; --idle-for
    double idle_threshold = 0.01;    // CPU seconds per second of window
    unsigned min_age = 10;           // seconds a slab must have stayed untouched
    uint64_t min_rss = 0;            // bytes
    bool dry_run = false;
    bool json = false;
    double wait = 2;                 // seconds before measuring "after"
    bool obsolete_signal = false;    // --signal SIG was given: ignored, with a warning
    bool help = false;
};

// Parses argv[1..]; on a usage error returns false with the message in *error.
bool parse_args(int argc, char* const* argv, Options* out, std::string* error);
extern const char kUsage[];

// "90", "90s", "500ms", "5m", "1h", "1.5m" -> seconds.  Must be > 0 unless
// allow_zero; at most a day.
std::optional<double> parse_duration(std::string_view s, bool allow_zero = false);
// "4096", "64K", "64k", "20M", "1G", "1.5G", with optional "B"/"iB" -> bytes.
std::optional<uint64_t> parse_size(std::string_view s);
// Idle selection: CPU time (ticks) at the start and the end of the window.
struct CpuSample {
    uint64_t start_ticks = 0, end_ticks = 0;
    bool gone = false;  // the process exited during the window
};
// True if the process used less than threshold CPU seconds per second of
// window (i.e. is idle).
bool is_idle(const CpuSample& s, double window_seconds, double threshold, long ticks_per_second);

// Idle selection of several processes at once: those with the same non-empty
// group (their systemd unit) are idle or busy together, judged by the sum
// of their CPU time; a process with an empty group is judged alone.  A
// process that exited is never idle and does not count in its group.
std::vector<bool> idle_by_group(const std::vector<CpuSample>& samples, const std::vector<std::string>& group,
                                double window_seconds, double threshold, long ticks_per_second);

// One line of the report.
struct Entry {
    pid_t pid = 0;
    std::string comm, unit;   // unit empty if none
    bool target = false;      // paged out (or would be, with --dry-run)
    bool ok = false;          // the kernel took the ranges
    bool gone = false;        // exited before "after" was measured: not counted
    std::string reason;       // why skipped or failed
    uint64_t paged_bytes = 0;  // cold slab bytes handed to process_madvise
    uint64_t rss_before = 0, swap_before = 0, rss_after = 0, swap_after = 0;  // bytes
    bool have_after = false;
};

struct Report {
    unsigned min_age = 0;
    bool dry_run = false;
    bool no_swap = false;
    std::vector<Entry> entries;
};

int exit_status(const Report& r);  // 0 all targets ok; 1 none or a failure
std::string format_text(const Report& r);
std::string format_json(const Report& r);
std::string json_string(std::string_view s);  // quoted, escaped

}  // namespace btm_pageout
