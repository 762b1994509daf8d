// btm-pageout's pure parts (tools/btm-pageout/core.h).
#include <gtest/gtest.h>

#include "core.h"

namespace {

using namespace btm_pageout;

bool parse(std::vector<std::string> words, Options* o, std::string* err = nullptr) {
    std::vector<char*> argv{const_cast<char*>("btm-pageout")};
    for (auto& w : words) argv.push_back(w.data());
    std::string e;
    bool ok = parse_args(int(argv.size()), argv.data(), o, err ? err : &e);
    return ok;
}

TEST(Args, Defaults) {
    Options o;
    ASSERT_TRUE(parse({"--pid", "42"}, &o));
    EXPECT_EQ(o.pids, std::vector<pid_t>{42});
    EXPECT_EQ(o.min_age, 10u);
    EXPECT_EQ(o.wait, 2.0);
    EXPECT_FALSE(o.obsolete_signal);
    EXPECT_FALSE(o.idle_for);
    EXPECT_FALSE(o.json || o.dry_run || o.all);
}

TEST(Args, Everything) {
    Options o;
    ASSERT_TRUE(parse({"--pid", "1", "--pid=2", "--unit", "web", "--unit=db.service", "--idle-for", "5m",
                       "--min-age", "300", "--min-rss", "64M", "--dry-run", "--json", "--wait", "0",
                       "--signal", "RTMIN+3", "--idle-threshold", "0.5"},
                      &o));
    EXPECT_EQ(o.pids, (std::vector<pid_t>{1, 2}));
    EXPECT_EQ(o.units, (std::vector<std::string>{"web.service", "db.service"}));
    EXPECT_EQ(*o.idle_for, 300.0);
    EXPECT_EQ(o.min_age, 300u);
    EXPECT_EQ(o.min_rss, 64u << 20);
    EXPECT_TRUE(o.dry_run && o.json);
    EXPECT_EQ(o.wait, 0.0);
    EXPECT_TRUE(o.obsolete_signal);  // accepted from old command lines, ignored
    EXPECT_EQ(o.idle_threshold, 0.5);
}

TEST(Args, Help) {
    Options o;
    ASSERT_TRUE(parse({"--help"}, &o));
    EXPECT_TRUE(o.help);
}

TEST(Args, UsageErrors) {
    for (std::vector<std::string> bad : std::vector<std::vector<std::string>>{
             {},
             {"--frobnicate"},
             {"--pid"},
             {"--pid", "x"},
             {"--pid", "-3"},
             {"--pid", "0"},
             {"--all", "--pid", "3"},
             {"--all", "--unit", "a"},
             {"--unit", "a/b"},
             {"--all", "--idle-for", "0"},
             {"--all", "--idle-for", "3 days"},
             {"--all", "--min-age", "1.5"},
             {"--all", "--min-rss", "12Q"},
             {"--all", "--wait", "-1"},
             {"--all", "--signal"},
             {"--all", "--idle-threshold", "0"},
         }) {
        Options o;
        std::string err;
        EXPECT_FALSE(parse(bad, &o, &err)) << testing::PrintToString(bad);
        EXPECT_FALSE(err.empty());
    }
}

TEST(Durations, Parse) {
    EXPECT_EQ(*parse_duration("90"), 90.0);
    EXPECT_EQ(*parse_duration("90s"), 90.0);
    EXPECT_EQ(*parse_duration("500ms"), 0.5);
    EXPECT_EQ(*parse_duration("1.5m"), 90.0);
    EXPECT_EQ(*parse_duration("2min"), 120.0);
    EXPECT_EQ(*parse_duration("1h"), 3600.0);
    EXPECT_EQ(*parse_duration("0", true), 0.0);
    EXPECT_FALSE(parse_duration("0"));
    EXPECT_FALSE(parse_duration(""));
    EXPECT_FALSE(parse_duration("s"));
    EXPECT_FALSE(parse_duration("-1"));
    EXPECT_FALSE(parse_duration("5d"));
    EXPECT_FALSE(parse_duration("25h"));
    EXPECT_FALSE(parse_duration("nan"));
}

TEST(Sizes, Parse) {
    EXPECT_EQ(*parse_size("4096"), 4096u);
    EXPECT_EQ(*parse_size("64K"), 65536u);
    EXPECT_EQ(*parse_size("64k"), 65536u);
    EXPECT_EQ(*parse_size("20M"), 20u << 20);
    EXPECT_EQ(*parse_size("20MiB"), 20u << 20);
    EXPECT_EQ(*parse_size("20MB"), 20u << 20);
    EXPECT_EQ(*parse_size("1.5G"), 3ull << 29);
    EXPECT_EQ(*parse_size("0"), 0u);
    EXPECT_FALSE(parse_size(""));
    EXPECT_FALSE(parse_size("M"));
    EXPECT_FALSE(parse_size("12Q"));
    EXPECT_FALSE(parse_size("-5"));
    EXPECT_FALSE(parse_size("99999999T"));
}

TEST(Idle, Selection) {
    const long hz = 100;
    // 10 s window, threshold 0.01 CPU s/s: under 0.1 CPU s (10 ticks) is idle.
    EXPECT_TRUE(is_idle({500, 500, false}, 10, 0.01, hz));
    EXPECT_TRUE(is_idle({500, 509, false}, 10, 0.01, hz));
    EXPECT_FALSE(is_idle({500, 510, false}, 10, 0.01, hz));
    EXPECT_FALSE(is_idle({500, 900, false}, 10, 0.01, hz));
    // Gone, or the counter went backwards (another process with that PID).
    EXPECT_FALSE(is_idle({500, 500, true}, 10, 0.01, hz));
    EXPECT_FALSE(is_idle({500, 400, false}, 10, 0.01, hz));
    // A longer window allows more ticks at the same rate.
    EXPECT_TRUE(is_idle({0, 50, false}, 60, 0.01, hz));
    EXPECT_FALSE(is_idle({0, 50, false}, 1, 0.01, hz));
}

Report sample() {
    Report r;
    r.min_age = 5;
    Entry a;
    a.pid = 10, a.comm = "svc \"x\"", a.unit = "svc.service", a.target = true, a.ok = true;
    a.paged_bytes = 60 << 20;
    a.rss_before = 100 << 20, a.swap_before = 0, a.rss_after = 40 << 20, a.swap_after = 60 << 20;
    a.have_after = true;
    Entry b;
    b.pid = 11, b.comm = "sleep", b.reason = "does not run with btmalloc";
    r.entries = {a, b};
    return r;
}

TEST(Report, Json) {
    std::string j = format_json(sample());
    EXPECT_EQ(j,
              "{\"min_age\":5,\"dry_run\":false,\"swap\":true,\"processes\":["
              "{\"pid\":10,\"comm\":\"svc \\\"x\\\"\",\"unit\":\"svc.service\",\"status\":\"paged\","
              "\"paged_bytes\":62914560,\"rss_before\":104857600,\"swap_before\":0,\"rss_after\":41943040,"
              "\"swap_after\":62914560},"
              "{\"pid\":11,\"comm\":\"sleep\",\"unit\":null,\"status\":\"skipped\","
              "\"reason\":\"does not run with btmalloc\"}],"
              "\"total\":{\"targets\":1,\"paged\":1,\"gone\":0,\"paged_bytes\":62914560,"
              "\"rss_before\":104857600,\"swap_before\":0,"
              "\"rss_after\":41943040,\"swap_after\":62914560}}\n");
    EXPECT_EQ(json_string(std::string("a\nb\x01\\", 5)), "\"a\\u000ab\\u0001\\\\\"");
}

// Issue 17, case 3: a process that exited after the pageout is "gone", and
// its memory is not counted as freed.
TEST(Report, GoneIsNotCountedAsFreed) {
    Report r = sample();
    r.entries[0].gone = true;
    r.entries[0].have_after = false;
    std::string t = format_text(r);
    EXPECT_NE(t.find("gone    10 (svc \"x\") svc.service: exited after the pageout; its memory is not counted"),
              std::string::npos)
        << t;
    EXPECT_NE(t.find("total: 1 process(es), 1 gone, 0.0 MiB of cold memory, rss 0.0 MiB -> 0.0 MiB (+0.0 MiB)"),
              std::string::npos)
        << t;
    std::string j = format_json(r);
    EXPECT_NE(j.find("\"status\":\"gone\""), std::string::npos) << j;
    EXPECT_NE(j.find("\"total\":{\"targets\":1,\"paged\":0,\"gone\":1,\"paged_bytes\":0,\"rss_before\":0,"
                     "\"swap_before\":0,\"rss_after\":0,\"swap_after\":0}"),
              std::string::npos)
        << j;
    EXPECT_EQ(exit_status(r), kExitOk);
}

TEST(Report, TextAndExitStatus) {
    Report r = sample();
    r.no_swap = true;
    std::string t = format_text(r);
    EXPECT_NE(t.find("warning: this machine has no swap"), std::string::npos) << t;
    EXPECT_NE(t.find("paged   10 (svc \"x\") svc.service: 60.0 MiB of cold memory; rss 100.0 MiB -> 40.0 MiB (-60.0 MiB)"),
              std::string::npos)
        << t;
    EXPECT_NE(t.find("skipped 11 (sleep): does not run with btmalloc"), std::string::npos) << t;
    EXPECT_NE(t.find("total: 1 process(es)"), std::string::npos) << t;
    EXPECT_EQ(exit_status(r), kExitOk);
    r.entries[0].ok = false;
    r.entries[0].reason = "EPERM: process_madvise needs root or CAP_SYS_NICE";
    EXPECT_EQ(exit_status(r), kExitNothing);
    EXPECT_NE(format_text(r).find("failed  10"), std::string::npos);
    r.dry_run = true;
    EXPECT_EQ(exit_status(r), kExitOk);
    r.entries.erase(r.entries.begin());
    EXPECT_EQ(exit_status(r), kExitNothing);
}

}  // namespace

namespace {

using namespace btm_pageout;

TEST(Idle, ByUnit) {
    const long hz = 100;
    // 10 s window at 0.01: a group is idle under 10 ticks in total.
    std::vector<CpuSample> s = {
        {0, 6, false},    // a.service: 6
        {100, 106, false},// a.service: +6 = 12 -> busy together
        {0, 3, false},    // b.service: 3
        {0, 4, false},    // b.service: +4 = 7 -> idle together
        {0, 900, true},   // b.service, exited: not idle, not counted
        {0, 5, false},    // alone: idle
        {0, 50, false},   // alone: busy
    };
    std::vector<std::string> g = {"a.service", "a.service", "b.service", "b.service", "b.service", "", ""};
    std::vector<bool> idle = idle_by_group(s, g, 10, 0.01, hz);
    EXPECT_EQ(idle, (std::vector<bool>{false, false, true, true, false, true, false}));
    // Alone, each of a.service's processes would have been idle.
    EXPECT_TRUE(is_idle(s[0], 10, 0.01, hz));
    // A counter that went backwards makes its whole group busy.
    std::vector<CpuSample> back = {{50, 10, false}, {0, 0, false}};
    EXPECT_EQ(idle_by_group(back, {"c.service", "c.service"}, 10, 0.01, hz), (std::vector<bool>{false, false}));
}

}  // namespace
