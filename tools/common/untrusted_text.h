// Showing bytes the tools did not choose: process names (/proc/PID/comm,
// /proc/PID/cmdline) are set by whoever runs the process, and the tools print
// them to an administrator's terminal, often root's, or to a JSON consumer.
// A name may hold terminal escapes (ESC ] 0 ; ... BEL retitles the window;
// others move the cursor or rewrite what is on screen) and bytes that are
// not UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace btm_tools {

// For a terminal: valid UTF-8 printable text as it is; control characters
// (C0, DEL and the C1 range U+0080..U+009F), bytes that are not part of
// valid UTF-8, and the backslash itself as \xNN (backslash: \\), so the
// output never carries an escape sequence and can be read back unambiguously.
std::string printable(std::string_view bytes);

// A JSON string literal, quotes included, that is valid UTF-8: '"', '\' and
// control characters escaped, each byte that is not part of valid UTF-8
// replaced by U+FFFD.
std::string json_string(std::string_view bytes);

}  // namespace btm_tools
