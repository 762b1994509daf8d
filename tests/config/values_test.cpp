// Values of each kind, their canonical spelling, ranges, key lookup and
// glob matching.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "config/config.h"

namespace btm::config {
namespace {

struct Parsed {
    bool ok;
    uint64_t v;
};

Parsed parse(unsigned id, const std::string& s) {
    uint64_t v = 12345;
    const char* why = nullptr;
    bool ok = parse_value(id, s.data(), s.size(), &v, &why);
    if (!ok) {
        EXPECT_NE(why, nullptr);
    }
    return {ok, v};
}

std::string format(unsigned id, uint64_t v) {
    char buf[32];
    size_t n = format_value(id, v, buf, sizeof buf);
    EXPECT_EQ(n, strlen(buf));
    return buf;
}

bool glob(const char* p, const char* s) { return glob_match(p, strlen(p), s, strlen(s)); }

TEST(Values, Booleans) {
    for (const char* on : {"on", "ON", "yes", "Yes", "true", "TRUE", "1"}) {
        auto r = parse(k_async, on);
        EXPECT_TRUE(r.ok && r.v == 1) << on;
    }
    for (const char* off : {"off", "Off", "no", "NO", "false", "0"}) {
        auto r = parse(k_async, off);
        EXPECT_TRUE(r.ok && r.v == 0) << off;
    }
    for (const char* bad : {"", "2", "onn", "o", "enable", "01", " on"}) EXPECT_FALSE(parse(k_async, bad).ok) << bad;
}

TEST(Values, Modes) {
    EXPECT_EQ(parse(k_partition_mode, "hash").v, 0u);
    EXPECT_EQ(parse(k_partition_mode, "INTERN").v, 1u);
    EXPECT_FALSE(parse(k_partition_mode, "0").ok);
    EXPECT_FALSE(parse(k_partition_mode, "hashes").ok);
}

TEST(Values, Numbers) {
    EXPECT_EQ(parse(k_partitions, "0").v, 0u);
    EXPECT_EQ(parse(k_partitions, "0008").v, 8u);
    EXPECT_EQ(parse(k_partitions, "18446744073709551614").v, 18446744073709551614u);
    EXPECT_EQ(parse(k_partitions, "18446744073709551616").v, ~uint64_t(0));  // saturates: out of range
    for (const char* bad : {"", "8k", "+8", "-8", "0x10", "8 ", "1e3"}) EXPECT_FALSE(parse(k_partitions, bad).ok) << bad;
}

TEST(Values, Sizes) {
    EXPECT_EQ(parse(k_tcache_bytes, "4096").v, 4096u);
    EXPECT_EQ(parse(k_tcache_bytes, "512k").v, 512u << 10);
    EXPECT_EQ(parse(k_tcache_bytes, "64M").v, 64u << 20);
    EXPECT_EQ(parse(k_reserve, "1g").v, uint64_t(1) << 30);
    EXPECT_EQ(parse(k_reserve, "128T").v, uint64_t(128) << 40);
    EXPECT_EQ(parse(k_reserve, "99999999t").v, ~uint64_t(0));
    for (const char* bad : {"", "k", "1x", "1kb", "1.5m", "m1"}) EXPECT_FALSE(parse(k_reserve, bad).ok) << bad;
}

TEST(Values, CanonicalSpellingReadsBack) {
    for (unsigned i = 0; i < kKnobCount; ++i) {
        const KnobInfo& k = kKnobs[i];
        for (uint64_t v : {k.def, k.lo, k.hi, k.lo + 1, k.hi - 1}) {
            std::string s = format(i, v);
            auto r = parse(i, s);
            EXPECT_TRUE(r.ok) << k.key << " " << s;
            EXPECT_EQ(r.v, v) << k.key << " " << s;
        }
    }
    EXPECT_EQ(format(k_async, 1), "on");
    EXPECT_EQ(format(k_partition_mode, 1), "intern");
    EXPECT_EQ(format(k_pageout, 0), "off");
    EXPECT_EQ(format(k_tcache_bytes, 1 << 20), "1m");
    EXPECT_EQ(format(k_tcache_bytes, 1536 << 10), "1536k");
    EXPECT_EQ(format(k_tcache_bytes, 1000), "1000");
    EXPECT_EQ(format(k_tcache_bytes, 0), "0");
    EXPECT_EQ(format(k_reserve, uint64_t(64) << 30), "64g");
    char tiny[3];
    EXPECT_EQ(format_value(k_reserve, uint64_t(64) << 30, tiny, sizeof tiny), 2u);
    EXPECT_STREQ(tiny, "64");
}

TEST(Values, KeysAreCaseInsensitive) {
    EXPECT_EQ(find_knob("partitions", 10), unsigned(k_partitions));
    EXPECT_EQ(find_knob("PARTITIONS", 10), unsigned(k_partitions));
    EXPECT_EQ(find_knob("partition", 9), unsigned(kKnobCount));
    EXPECT_EQ(find_knob("partitionsx", 11), unsigned(kKnobCount));
    EXPECT_EQ(find_knob("", 0), unsigned(kKnobCount));
}

TEST(Values, TableIsWellFormed) {
    for (unsigned i = 0; i < kKnobCount; ++i) {
        const KnobInfo& k = kKnobs[i];
        EXPECT_TRUE(in_range(i, k.def)) << k.key;
        for (const char* c = k.key; *c; ++c) EXPECT_TRUE((*c >= 'a' && *c <= 'z') || *c == '_') << k.key;
        EXPECT_GT(strlen(kKnobHelp[i]), 10u) << k.key;
        EXPECT_NE(kKnobHelp[i][strlen(kKnobHelp[i]) - 1], '.') << k.key;
        for (unsigned j = 0; j < i; ++j) EXPECT_STRNE(kKnobs[j].key, k.key);
    }
}

TEST(Glob, Literals) {
    EXPECT_TRUE(glob("foo", "foo"));
    EXPECT_FALSE(glob("foo", "fo"));
    EXPECT_FALSE(glob("foo", "fooo"));
    EXPECT_TRUE(glob("", ""));
    EXPECT_FALSE(glob("", "a"));
    EXPECT_TRUE(glob("a\\*b", "a*b"));
    EXPECT_FALSE(glob("a\\*b", "axb"));
    EXPECT_TRUE(glob("a\\[", "a["));
}

TEST(Glob, Stars) {
    EXPECT_TRUE(glob("*", ""));
    EXPECT_TRUE(glob("*", "anything"));
    EXPECT_TRUE(glob("python3*", "python3"));
    EXPECT_TRUE(glob("python3*", "python3.11"));
    EXPECT_FALSE(glob("python3*", "python"));
    EXPECT_TRUE(glob("*sh", "bash"));
    EXPECT_TRUE(glob("*a*b*c*", "xxaxxbxxcxx"));
    EXPECT_FALSE(glob("*a*b*c*", "xxaxxcxxbxx"));
    EXPECT_TRUE(glob("a**b", "ab"));
    EXPECT_TRUE(glob("*ab", "aab"));
    EXPECT_TRUE(glob("*aab", "aaab"));
    // Worst case for naive recursion stays fast.
    std::string a(256, 'a');
    EXPECT_FALSE(glob("*a*a*a*a*a*a*a*a*a*a*a*a*b", a.c_str()));
}

TEST(Glob, QuestionAndSets) {
    EXPECT_TRUE(glob("?sh", "zsh"));
    EXPECT_FALSE(glob("?sh", "sh"));
    EXPECT_TRUE(glob("[bz]sh", "bsh"));
    EXPECT_FALSE(glob("[bz]sh", "csh"));
    EXPECT_TRUE(glob("x[0-9]", "x7"));
    EXPECT_FALSE(glob("x[0-9]", "xa"));
    EXPECT_TRUE(glob("x[!0-9]", "xa"));
    EXPECT_TRUE(glob("x[^0-9]", "xa"));
    EXPECT_FALSE(glob("x[!0-9]", "x1"));
    EXPECT_TRUE(glob("x[]]", "x]"));
    EXPECT_TRUE(glob("x[!]]", "xa"));
    EXPECT_FALSE(glob("x[!]]", "x]"));
    EXPECT_TRUE(glob("x[a-]", "x-"));
    EXPECT_TRUE(glob("[a-c][a-c]*", "cab"));
    EXPECT_TRUE(glob("x[", "x["));  // malformed set: a literal '['
    EXPECT_TRUE(glob("\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9"));
}

TEST(Secure, OwnershipRule) {
    EXPECT_TRUE(trusted_owner(0, 0100644));
    EXPECT_TRUE(trusted_owner(0, 0100600));
    EXPECT_TRUE(trusted_owner(0, 0100444));
    EXPECT_TRUE(trusted_owner(0, 0100755));
    EXPECT_FALSE(trusted_owner(0, 0100664));
    EXPECT_FALSE(trusted_owner(0, 0100646));
    EXPECT_FALSE(trusted_owner(0, 0100666));
    EXPECT_FALSE(trusted_owner(1000, 0100644));
    EXPECT_FALSE(trusted_owner(65534, 0100600));
}

}  // namespace
}  // namespace btm::config
