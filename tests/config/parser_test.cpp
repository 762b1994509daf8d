// The line parser through parse_buffer(): syntax, every kind of bad line,
// sections and globs, precedence inside and across files.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "config/parser.h"
#include "test_util.h"

namespace btm::config::test {
namespace {

TEST(Parser, DefaultsComeFromTheTable) {
    Conf r;
    for (unsigned i = 0; i < kKnobCount; ++i) {
        EXPECT_EQ(field(r.v, i), kKnobs[i].def) << kKnobs[i].key;
        EXPECT_EQ(r.o.source[i], kDefault);
    }
    // The fields the allocator reads by name line up with the table.
    EXPECT_EQ(&field(r.v, k_partitions), &r.v.partitions);
    EXPECT_EQ(&field(r.v, k_stats_at_exit), &r.v.stats_at_exit);
}

TEST(Parser, KeyValueSpellings) {
    Conf r;
    EXPECT_EQ(r.parse("partitions = 8\n"
                      "async=off\n"
                      "\tmesh\t=\ton\t\n"
                      "  Verbose = YES   # a comment\n"
                      "HARDENING = False\n"),
              0u)
        << r.all_diags();
    EXPECT_EQ(r.get("partitions"), 8u);
    EXPECT_EQ(r.get("async"), 0u);
    EXPECT_EQ(r.get("mesh"), 1u);
    EXPECT_EQ(r.get("verbose"), 1u);
    EXPECT_EQ(r.get("hardening"), 0u);
    EXPECT_EQ(r.source("partitions"), kFile);
    EXPECT_EQ(r.file("partitions"), "t.conf");
    EXPECT_EQ(r.line("partitions"), 1u);
    EXPECT_EQ(r.line("verbose"), 4u);
    EXPECT_TRUE(r.diags.empty());
}

TEST(Parser, CommentsAndBlankLines) {
    Conf r;
    EXPECT_EQ(r.parse("# partitions = 8\n\n   \n\t# indented comment\n#\nwarm_slabs = 7\n"), 0u);
    EXPECT_EQ(r.get("partitions"), 64u);
    EXPECT_EQ(r.get("warm_slabs"), 7u);
    EXPECT_EQ(r.line("warm_slabs"), 6u);
}

TEST(Parser, LaterLineWins) {
    Conf r;
    r.parse("partitions = 8\npartitions = 16\n");
    EXPECT_EQ(r.get("partitions"), 16u);
    EXPECT_EQ(r.line("partitions"), 2u);
}

TEST(Parser, CrlfLineEndings) {
    Conf r("prog");
    EXPECT_EQ(r.parse("partitions = 8\r\nasync = off\r\n[program *]\r\nmesh = on\r\n"), 0u) << r.all_diags();
    EXPECT_EQ(r.get("partitions"), 8u);
    EXPECT_EQ(r.get("async"), 0u);
    EXPECT_EQ(r.get("mesh"), 1u);
}

TEST(Parser, LoneCarriageReturnIsAControlCharacter) {
    Conf r;
    EXPECT_EQ(r.parse("partitions = 8\rasync = off\n"), 1u);
    EXPECT_EQ(r.diags[0], "t.conf:1: malformed line: control characters or NUL bytes");
    EXPECT_EQ(r.get("partitions"), 64u);
}

TEST(Parser, NoTrailingNewline) {
    Conf r;
    EXPECT_EQ(r.parse("async = off\npartitions = 8"), 0u);
    EXPECT_EQ(r.get("partitions"), 8u);
    EXPECT_EQ(r.line("partitions"), 2u);
    Conf crlf;
    EXPECT_EQ(crlf.parse("partitions = 8\r"), 0u);
    EXPECT_EQ(crlf.get("partitions"), 8u);
}

TEST(Parser, EmptyInput) {
    Conf r;
    EXPECT_EQ(r.parse(""), 0u);
    EXPECT_EQ(r.parse("\n\n\n"), 0u);
    EXPECT_EQ(r.get("partitions"), 64u);
}

TEST(Parser, OverlongLineIsSkippedAndCountingGoesOn) {
    std::string max(kMaxLineBytes - 2, 'x');
    std::string text = "#" + max + "\n";                   // exactly the limit with "#" and one more
    text += "#" + max + "x\r\n";                            // the limit plus a CR: still fine
    text += "partitions = 4" + std::string(kMaxLineBytes, ' ') + "\n";  // over
    text += "async = off\n";
    text += std::string(5 * kMaxLineBytes, 'y');            // over, and no newline
    Conf r;
    EXPECT_EQ(r.parse(text), 2u) << r.all_diags();
    ASSERT_EQ(r.diags.size(), 2u);
    EXPECT_EQ(r.diags[0], "t.conf:3: overlong line: more than 1024 bytes; ignored");
    EXPECT_EQ(r.diags[1], "t.conf:5: overlong line: more than 1024 bytes; ignored");
    EXPECT_EQ(r.get("partitions"), 64u);
    EXPECT_EQ(r.get("async"), 0u);
    EXPECT_EQ(r.line("async"), 4u);
}

TEST(Parser, NulBytesMakeAMalformedLine) {
    Conf r;
    static const char kText[] = "partitions = 8\0garbage\nasync = off\n";
    std::string text(kText, sizeof kText - 1);
    EXPECT_EQ(r.parse(text), 1u);
    EXPECT_EQ(r.diags[0], "t.conf:1: malformed line: control characters or NUL bytes");
    EXPECT_EQ(r.get("partitions"), 64u);
    EXPECT_EQ(r.get("async"), 0u);
}

TEST(Parser, BinaryGarbageNeverSetsAnInvalidValue) {
    std::mt19937 rng(4);
    for (int round = 0; round < 200; ++round) {
        std::string text(size_t(rng() % 4096), '\0');
        for (char& c : text) c = char(rng());
        // Sprinkle real keys so that some lines come close to valid.
        for (int k = 0; k < 8; ++k) {
            size_t at = rng() % (text.size() + 1);
            text.insert(at, std::string("\n") + kKnobs[rng() % kKnobCount].key + " = 1");
        }
        Conf r("prog");
        r.parse(text);
        for (unsigned i = 0; i < kKnobCount; ++i) EXPECT_TRUE(in_range(i, field(r.v, i)));
    }
}

TEST(Parser, UnknownKey) {
    Conf r;
    EXPECT_EQ(r.parse("partitions = 8\npartition = 4\n"), 1u);
    EXPECT_EQ(r.diags[0], "t.conf:2: unknown key 'partition'");
    EXPECT_EQ(r.get("partitions"), 8u);
}

// An installed configuration from the signal design keeps its line: one
// clear warning, every knob at its default, the program starts.
TEST(Parser, ObsoletePageoutSignalIsOneWarning) {
    Conf r;
    EXPECT_EQ(r.parse("pageout_signal = RTMIN+3\n[program x*]\npageout_signal = none\n"), 1u) << r.all_diags();
    EXPECT_EQ(r.diags[0],
              "t.conf:1: pageout_signal is obsolete and ignored: btm-pageout sends no signal now (the pageout knob "
              "says whether a program accepts page-out)");
    for (unsigned i = 0; i < kKnobCount; ++i) EXPECT_EQ(r.o.source[i], kDefault);
    EXPECT_EQ(r.get("pageout"), 1u);
}

TEST(Parser, BadValues) {
    Conf r;
    EXPECT_EQ(r.parse("async = maybe\n"
                      "partitions = eight\n"
                      "partition_mode = random\n"
                      "tcache_bytes = 1x\n"
                      "pageout = sometimes\n"
                      "async =\n"
                      "mesh = on off\n"
                      "partitions = -1\n"
                      "partitions = 8#x\n"),
              9u);
    EXPECT_EQ(r.diags[0], "t.conf:1: bad value 'maybe' for async: expected on or off");
    EXPECT_EQ(r.diags[1], "t.conf:2: bad value 'eight' for partitions: expected a decimal number");
    EXPECT_EQ(r.diags[2], "t.conf:3: bad value 'random' for partition_mode: expected hash or intern");
    BTM_EXPECT_CONTAINS(r.diags[3], "t.conf:4: bad value '1x' for tcache_bytes: expected a size");
    EXPECT_EQ(r.diags[4], "t.conf:5: bad value 'sometimes' for pageout: expected on or off");
    EXPECT_EQ(r.diags[5], "t.conf:6: bad value for async: no value");
    EXPECT_EQ(r.diags[6], "t.conf:7: bad value for mesh: more than one word");
    BTM_EXPECT_CONTAINS(r.diags[7], "t.conf:8: bad value '-1' for partitions");
    BTM_EXPECT_CONTAINS(r.diags[8], "t.conf:9: bad value '8#x' for partitions");
    for (unsigned i = 0; i < kKnobCount; ++i) EXPECT_EQ(r.o.source[i], kDefault);
}

TEST(Parser, OutOfRange) {
    Conf r;
    EXPECT_EQ(r.parse("partitions = 0\n"
                      "partitions = 1025\n"
                      "partitions = 99999999999999999999999\n"
                      "tcache_bytes = 65m\n"
                      "reserve = 1k\n"
                      "reserve = 99999999999999t\n"),
              6u)
        << r.all_diags();
    EXPECT_EQ(r.diags[0], "t.conf:1: out of range: partitions = 0 (allowed 1..1024)");
    EXPECT_EQ(r.diags[1], "t.conf:2: out of range: partitions = 1025 (allowed 1..1024)");
    EXPECT_EQ(r.diags[3], "t.conf:4: out of range: tcache_bytes = 65m (allowed 0..64m)");
    EXPECT_EQ(r.diags[4], "t.conf:5: out of range: reserve = 1k (allowed 64m..128t)");
    for (unsigned i = 0; i < kKnobCount; ++i) EXPECT_EQ(r.o.source[i], kDefault);
}

TEST(Parser, MalformedLines) {
    Conf r;
    EXPECT_EQ(r.parse("partitions 8\n= 8\nasync: off\nkey.with.dots = 1\n[program foo\n"), 5u);
    EXPECT_EQ(r.diags[0], "t.conf:1: malformed line: expected KEY = VALUE");
    EXPECT_EQ(r.diags[1], "t.conf:2: malformed line: expected KEY = VALUE");
    EXPECT_EQ(r.diags[2], "t.conf:3: malformed line: expected KEY = VALUE");
    EXPECT_EQ(r.diags[3], "t.conf:4: malformed line: expected KEY = VALUE");
    BTM_EXPECT_CONTAINS(r.diags[4], "t.conf:5: malformed section header");
}

TEST(Parser, QuotedTextIsSanitisedAndBounded) {
    Conf r;
    r.parse("async = \xff\xfe\x80zz\n" + std::string(200, 'k') + " = 1\n");
    ASSERT_EQ(r.diags.size(), 2u);
    EXPECT_EQ(r.diags[0], "t.conf:1: bad value '???zz' for async: expected on or off");
    EXPECT_EQ(r.diags[1], "t.conf:2: unknown key '" + std::string(48, 'k') + "...'");
}

TEST(Parser, SecureModeDoesNotQuoteFileContents) {
    Conf r;
    r.opt.secure = true;
    r.parse("root:x:0:0 = 1\nsecret = 1\nasync = hunter2\npartitions = 5000\n");
    ASSERT_EQ(r.diags.size(), 4u);
    EXPECT_EQ(r.diags[0], "t.conf:1: malformed line: expected KEY = VALUE");
    EXPECT_EQ(r.diags[1], "t.conf:2: unknown key");
    EXPECT_EQ(r.diags[2], "t.conf:3: bad value for async: expected on or off");
    EXPECT_EQ(r.diags[3], "t.conf:4: out of range: partitions (allowed 1..1024)");
}

TEST(Parser, WarningsPerFileAreCapped) {
    Conf r;
    r.opt.max_warnings = 10;
    std::string text;
    for (int i = 0; i < 25; ++i) text += "nonsense\n";
    text += "partitions = 8\n";
    EXPECT_EQ(r.parse(text), 25u);
    ASSERT_EQ(r.diags.size(), 11u);
    EXPECT_EQ(r.diags[10], "t.conf:11: too many problems; the rest in this file are not reported");
    EXPECT_EQ(r.get("partitions"), 8u);  // valid lines still apply
    // The cap is per file.
    EXPECT_EQ(r.parse("nonsense\n", "u.conf"), 1u);
    EXPECT_EQ(r.diags.back(), "u.conf:1: malformed line: expected KEY = VALUE");
}

TEST(Sections, ApplyOnlyToMatchingPrograms) {
    const char* text =
        "partitions = 8\n"
        "[program python3*]\n"
        "partitions = 16\n"
        "[program java]\n"
        "enabled = off\n";
    Conf py("python3.11");
    EXPECT_EQ(py.parse(text), 0u);
    EXPECT_EQ(py.get("partitions"), 16u);
    EXPECT_EQ(py.get("enabled"), 1u);
    EXPECT_TRUE(py.o.in_section[k_partitions]);
    Conf java("java");
    java.parse(text);
    EXPECT_EQ(java.get("partitions"), 8u);
    EXPECT_EQ(java.get("enabled"), 0u);
    EXPECT_EQ(java.line("enabled"), 5u);
    Conf none;  // no program name known: no section applies
    none.parse(text);
    EXPECT_EQ(none.get("partitions"), 8u);
    EXPECT_EQ(none.get("enabled"), 1u);
}

// The program name is looked up (a readlink of /proc/self/exe in a real
// process) only when a [program] header needs it, and then once per file.
int g_find_calls = 0;
const char* find_java() {
    ++g_find_calls;
    return "java";
}

TEST(Sections, ProgramNameIsFoundOnlyWhenAHeaderNeedsIt) {
    Conf c;
    c.opt.find_program = find_java;
    g_find_calls = 0;
    EXPECT_EQ(c.parse("partitions = 8\n[global]\nasync = off\n"), 0u);
    EXPECT_EQ(g_find_calls, 0);
    EXPECT_EQ(c.parse("[program python3*]\npartitions = 16\n[program java]\nenabled = off\n"), 0u);
    EXPECT_EQ(g_find_calls, 1);
    EXPECT_EQ(c.get("partitions"), 8u);
    EXPECT_EQ(c.get("enabled"), 0u);
    Conf named("python3.11");  // an explicit name wins: nothing is looked up
    named.opt.find_program = find_java;
    named.parse("[program python3*]\npartitions = 16\n");
    EXPECT_EQ(g_find_calls, 1);
    EXPECT_EQ(named.get("partitions"), 16u);
}

TEST(Sections, SeveralPatternsAndGlobs) {
    const char* text =
        "[program perl python[0-9]* ?sh]\n"
        "warm_slabs = 9\n";
    for (const char* yes : {"perl", "python3", "python3.11", "bsh", "zsh"}) {
        Conf r(yes);
        r.parse(text);
        EXPECT_EQ(r.get("warm_slabs"), 9u) << yes;
    }
    for (const char* no : {"perl5", "python", "pythonx", "bash", "sh", ""}) {
        Conf r(no);
        r.parse(text);
        EXPECT_EQ(r.get("warm_slabs"), 2u) << no;
    }
}

TEST(Sections, GlobalHeaderAndEachFileStartsGlobal) {
    Conf r("other");
    r.parse("[program foo]\nasync = off\n[global]\nmesh = on\n[program foo]\n");
    EXPECT_EQ(r.get("async"), 1u);
    EXPECT_EQ(r.get("mesh"), 1u);
    r.parse("partitions = 4\n", "second.conf");  // not inside the [program foo] above
    EXPECT_EQ(r.get("partitions"), 4u);
}

TEST(Sections, ProgramSectionBeatsGlobalLinesWhateverTheOrder) {
    Conf r("foo");
    r.parse("[program foo]\npartitions = 16\n[global]\npartitions = 8\n");
    EXPECT_EQ(r.get("partitions"), 16u);
    // A later file's global line does not undo an earlier file's section ...
    r.parse("partitions = 4\n", "later.conf");
    EXPECT_EQ(r.get("partitions"), 16u);
    EXPECT_EQ(r.file("partitions"), "t.conf");
    // ... but a later section does.
    r.parse("[program f*]\npartitions = 2\n", "later.conf");
    EXPECT_EQ(r.get("partitions"), 2u);
    EXPECT_EQ(r.file("partitions"), "later.conf");
    EXPECT_EQ(r.line("partitions"), 2u);
}

TEST(Sections, EnvironmentBeatsSections) {
    Conf r("foo");
    char e1[] = "BTM_PARTITIONS=32";
    char* env[] = {e1, nullptr};
    apply_environment(env, r.opt, &r.v, &r.o);
    r.parse("[program foo]\npartitions = 16\n");
    EXPECT_EQ(r.get("partitions"), 32u);
    EXPECT_EQ(r.source("partitions"), kEnvironment);
}

TEST(Sections, LinesOfOtherProgramsAreNotExaminedAtRunTime) {
    const char* text = "[program foo]\nnonsense\npartitions = 5000\nunknown = 1\n[program bar]\nmesh = on\n";
    Conf r("bar");
    EXPECT_EQ(r.parse(text), 0u) << r.all_diags();
    EXPECT_EQ(r.get("mesh"), 1u);
    // btmctl config check looks at every line, but applies none of them.
    Conf check("bar");
    check.opt.check_all = true;
    EXPECT_EQ(check.parse(text), 3u);
    EXPECT_EQ(check.get("mesh"), 1u);
    EXPECT_EQ(check.get("partitions"), 64u);
    Conf check_foo("foo");
    check_foo.opt.check_all = true;
    check_foo.parse(text);
    EXPECT_EQ(check_foo.get("mesh"), 0u);
}

TEST(Sections, MalformedHeaderIgnoresItsLines) {
    Conf r("foo");
    EXPECT_EQ(r.parse("[programme foo]\npartitions = 8\nnonsense\n[program foo]\nmesh = on\n"), 1u);
    EXPECT_EQ(r.diags[0],
              "t.conf:1: malformed section header: expected [program PATTERN...] or [global]; "
              "lines up to the next header are ignored");
    EXPECT_EQ(r.get("partitions"), 64u);
    EXPECT_EQ(r.get("mesh"), 1u);
    for (const char* bad : {"[]", "[program]", "[global foo]", "[program foo[ab]", "[program foo\\]",
                            "[program foo] x", "[ program\tfoo\x01]"}) {
        Conf b("foo");
        EXPECT_EQ(b.parse(std::string(bad) + "\nmesh = on\n"), 1u) << bad;
        BTM_EXPECT_CONTAINS(b.diags.at(0), "malformed section header") << bad;
        EXPECT_EQ(b.get("mesh"), 0u) << bad;
    }
}

TEST(Sections, HeaderSpellings) {
    for (const char* good : {"[program foo]", "[ program foo ]", "[PROGRAM foo]", "[program foo] # c",
                             "\t[program\tfoo]\t", "[program fo[o]]", "[program x foo]"}) {
        Conf r("foo");
        EXPECT_EQ(r.parse(std::string(good) + "\nmesh = on\n"), 0u) << good << r.all_diags();
        EXPECT_EQ(r.get("mesh"), 1u) << good;
    }
    Conf r("foo]");
    r.parse("[program foo[]]]\nmesh = on\n");  // a class holding ']'
    EXPECT_EQ(r.get("mesh"), 1u);
}

TEST(Parser, FeedingInPiecesEqualsFeedingWhole) {
    const std::string text =
        "partitions = 8\r\n# c\n[program p*]\nasync = off\n" + std::string(1500, 'z') +
        "\nnonsense\nmesh = on\n[bad\nverbose = on\n[global]\nwarm_chunks = 9";
    Conf whole("prog");
    unsigned expect = whole.parse(text);
    for (size_t step : {1, 2, 3, 7, 64, 1023, 1024, 1025, 4096}) {
        Conf part("prog");
        {
            Parser p("t.conf", part.opt, &part.v, &part.o);
            for (size_t i = 0; i < text.size(); i += step) p.feed(text.data() + i, std::min(step, text.size() - i));
            p.finish();
            EXPECT_EQ(p.problems(), expect) << step;
        }
        EXPECT_EQ(part.diags, whole.diags) << step;
        for (unsigned i = 0; i < kKnobCount; ++i) {
            EXPECT_EQ(field(part.v, i), field(whole.v, i)) << step << " " << kKnobs[i].key;
            EXPECT_EQ(part.o.line[i], whole.o.line[i]) << step << " " << kKnobs[i].key;
        }
    }
}

}  // namespace
}  // namespace btm::config::test
