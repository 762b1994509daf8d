// The contents of /etc/ld.so.preload, edited as text.  ld.so reads the file
// as a list of library names separated by blanks, tabs, newlines or colons,
// and a '#' starts a comment that runs to the end of the line -- but glibc
// 2.36 blanks only the first comment properly: in the later ones it blanks
// at most the '#', so their words are read as library names and every
// process complains.  Editing keeps every other entry, comment and line as it
// was, and never writes a comment of its own.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace btmctl::preload {

// Says whether an entry names our library.
using Matcher = std::function<bool(std::string_view entry)>;

// The entries, in file order.
std::vector<std::string> entries(std::string_view text);

// TEXT with LIBRARY added as a line of its own at the end.
std::string with_entry(std::string_view text, std::string_view library);

// TEXT without the entries OURS matches; a line left with no entry (with
// nothing, or only its comment) is dropped, other lines are untouched.
// *removed counts the entries removed.
std::string without_entries(std::string_view text, const Matcher& ours, unsigned* removed);

// The comments glibc misreads: every one after the first, with its line
// number (from 1).
struct Comment {
    unsigned line;
    std::string text;  // from its '#' to the end of the line
};
std::vector<Comment> misread_comments(std::string_view text);

// TEXT without those comments; a line left with nothing on it is dropped.
std::string without_misread_comments(std::string_view text);

// True when TEXT has no entry and no comment (only blanks and newlines).
bool is_blank(std::string_view text);

}  // namespace btmctl::preload
