#include "preload_file.h"

namespace btmctl::preload {
namespace {

constexpr std::string_view kSeparators = " \t:";

// Splits one line (without its newline) into the part ld.so reads and the
// comment, which keeps its '#'.
void split_comment(std::string_view line, std::string_view* code, std::string_view* comment) {
    size_t hash = line.find('#');
    *code = line.substr(0, hash);
    *comment = hash == std::string_view::npos ? std::string_view() : line.substr(hash);
}

template <typename F>
void for_each_token(std::string_view code, F&& f) {
    size_t i = 0;
    while (i < code.size()) {
        size_t start = code.find_first_not_of(kSeparators, i);
        if (start == std::string_view::npos) break;
        size_t end = code.find_first_of(kSeparators, start);
        if (end == std::string_view::npos) end = code.size();
        f(code.substr(start, end - start));
        i = end;
    }
}

template <typename F>
void for_each_line(std::string_view text, F&& f) {
    size_t i = 0;
    while (i < text.size()) {
        size_t nl = text.find('\n', i);
        bool has_newline = nl != std::string_view::npos;
        size_t end = has_newline ? nl : text.size();
        f(text.substr(i, end - i), has_newline);
        i = has_newline ? nl + 1 : text.size();
    }
}

}  // namespace

std::vector<std::string> entries(std::string_view text) {
    std::vector<std::string> out;
    for_each_line(text, [&](std::string_view line, bool) {
        std::string_view code, comment;
        split_comment(line, &code, &comment);
        for_each_token(code, [&](std::string_view t) { out.emplace_back(t); });
    });
    return out;
}

std::string with_entry(std::string_view text, std::string_view library) {
    std::string out(text);
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += library;
    out += '\n';
    return out;
}

std::string without_entries(std::string_view text, const Matcher& ours, unsigned* removed) {
    std::string out;
    unsigned count = 0;
    for_each_line(text, [&](std::string_view line, bool has_newline) {
        std::string_view code, comment;
        split_comment(line, &code, &comment);
        std::vector<std::string_view> kept;
        unsigned here = 0;
        for_each_token(code, [&](std::string_view t) {
            if (ours(t)) ++here;
            else kept.push_back(t);
        });
        count += here;
        if (here == 0) {
            out += line;
        } else {
            std::string rebuilt;
            for (std::string_view t : kept) {
                if (!rebuilt.empty()) rebuilt += ' ';
                rebuilt += t;
            }
            if (rebuilt.empty()) return;  // left with no entry: a comment line would be misread
            if (!comment.empty()) rebuilt.append(" ").append(comment);
            out += rebuilt;
        }
        if (has_newline) out += '\n';
    });
    *removed = count;
    return out;
}

std::vector<Comment> misread_comments(std::string_view text) {
    std::vector<Comment> out;
    unsigned number = 0, seen = 0;
    for_each_line(text, [&](std::string_view line, bool) {
        ++number;
        std::string_view code, comment;
        split_comment(line, &code, &comment);
        if (!comment.empty() && seen++ > 0) out.push_back({number, std::string(comment)});
    });
    return out;
}

std::string without_misread_comments(std::string_view text) {
    std::string out;
    unsigned seen = 0;
    for_each_line(text, [&](std::string_view line, bool has_newline) {
        std::string_view code, comment;
        split_comment(line, &code, &comment);
        if (!comment.empty() && seen++ > 0) {
            size_t end = code.find_last_not_of(" \t");
            if (end == std::string_view::npos) return;
            line = code.substr(0, end + 1);
        }
        out += line;
        if (has_newline) out += '\n';
    });
    return out;
}

bool is_blank(std::string_view text) {
    return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace btmctl::preload
