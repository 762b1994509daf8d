// printable() and json_string(): what the tools show of untrusted names.
#include <gtest/gtest.h>

#include <string>

#include "untrusted_text.h"

namespace btm_tools {
namespace {

using namespace std::string_literals;

TEST(Printable, PlainAndUtf8TextIsUnchanged) {
    EXPECT_EQ(printable("nginx: worker process"), "nginx: worker process");
    EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(Printable, TerminalEscapesAreShownNotSent) {
    EXPECT_EQ(printable("x\033]0;pwned\007"), "x\\x1b]0;pwned\\x07");
    EXPECT_EQ(printable("a\tb\nc\x7f"), "a\\x09b\\x0ac\\x7f");
    EXPECT_EQ(printable("\xc2\x9b" "2J"), "\\xc2\\x9b2J");  // C1 CSI, UTF-8 encoded
    EXPECT_EQ(printable("\x9b" "2J"), "\\x9b2J");           // C1 CSI, raw byte
}

TEST(Printable, InvalidUtf8IsShownAsBytes) {
    EXPECT_EQ(printable("a\xff\xfe"), "a\\xff\\xfe");
    EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");            // overlong '/'
    EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");   // a surrogate
    EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
    EXPECT_EQ(printable("\xe2\x82"), "\\xe2\\x82");            // truncated
}

TEST(Printable, BackslashIsDoubledSoTheOutputIsUnambiguous) {
    EXPECT_EQ(printable("a\\x1b"), "a\\\\x1b");
}

TEST(JsonString, EscapesQuotesBackslashesAndControls) {
    EXPECT_EQ(json_string("svc \"x\""), "\"svc \\\"x\\\"\"");
    EXPECT_EQ(json_string("a\nb\x01\\"s), "\"a\\u000ab\\u0001\\\\\"");
    EXPECT_EQ(json_string("x\033]0;pwned\007"), "\"x\\u001b]0;pwned\\u0007\"");
    EXPECT_EQ(json_string("\xc2\x9b"), "\"\\u009b\"");
    EXPECT_EQ(json_string("nul\0"s), "\"nul\\u0000\"");
}

TEST(JsonString, InvalidUtf8BecomesReplacementCharacters) {
    EXPECT_EQ(json_string("a\xff\xfe"), "\"a\xef\xbf\xbd\xef\xbf\xbd\"");
    EXPECT_EQ(json_string("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
    EXPECT_EQ(json_string("\xe2\x82"), "\"\xef\xbf\xbd\xef\xbf\xbd\"");
}

}  // namespace
}  // namespace btm_tools
