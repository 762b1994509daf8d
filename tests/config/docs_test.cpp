// The text generated from the knob table (tools/btmctl/knob_docs.cpp) says
// what the parser does: the example configuration parses without a problem
// and, uncommented, sets every knob to its default; the man page names every
// knob and its environment variable.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>

#include "knob_docs.h"
#include "test_util.h"

namespace btm::config::test {
namespace {

TEST(Docs, ExampleConfigIsCleanAndCommentedOut) {
    std::string text = btmctl::example_config();
    Conf r("anything");
    r.opt.check_all = true;
    EXPECT_EQ(r.parse(text, "example"), 0u) << r.all_diags();
    for (unsigned i = 0; i < kKnobCount; ++i) EXPECT_EQ(r.o.source[i], kDefault) << kKnobs[i].key;
}

TEST(Docs, UncommentedExampleSetsEveryDefault) {
    std::istringstream in(btmctl::example_config());
    std::string line, uncommented;
    unsigned settings = 0;
    static const std::regex kSetting("^#([a-z_]+ = \\S+)$");
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, kSetting)) {
            uncommented += m[1].str() + "\n";
            ++settings;
        }
    }
    EXPECT_EQ(settings, unsigned(kKnobCount));
    Conf r;
    EXPECT_EQ(r.parse(uncommented), 0u) << r.all_diags();
    for (unsigned i = 0; i < kKnobCount; ++i) {
        EXPECT_EQ(r.o.source[i], kFile) << kKnobs[i].key;
        EXPECT_EQ(field(r.v, i), kKnobs[i].def) << kKnobs[i].key;
    }
}

TEST(Docs, ManTableNamesEveryKnob) {
    std::string man = btmctl::man_knob_table();
    for (unsigned i = 0; i < kKnobCount; ++i) {
        std::string key = kKnobs[i].key, env = "BTM_";
        for (char c : key) env += char(toupper(static_cast<unsigned char>(c)));
        BTM_EXPECT_CONTAINS(man, "\\fB" + key + "\\fR = ") << key;
        BTM_EXPECT_CONTAINS(man, "\\fB" + env + "\\fR") << key;
    }
    std::istringstream in(man);
    for (std::string line; std::getline(in, line);) {
        EXPECT_LE(line.size(), 80u) << line;
        bool control = !line.empty() && (line[0] == '\'' || line[0] == '.');
        EXPECT_TRUE(!control || line == ".TP") << line;
    }
}

TEST(Docs, AcceptedValues) {
    EXPECT_EQ(btmctl::accepted_values(k_async), "on | off");
    EXPECT_EQ(btmctl::accepted_values(k_partitions), "1..1024");
    EXPECT_EQ(btmctl::accepted_values(k_tcache_bytes), "0..64m");
    EXPECT_EQ(btmctl::accepted_values(k_pageout), "on | off");
    EXPECT_EQ(btmctl::sentence("x y"), "X y.");
}

}  // namespace
}  // namespace btm::config::test
