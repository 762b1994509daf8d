// Helpers for the configuration tests: a parse run that collects
// diagnostics, and a scratch directory.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

// Substring checks without gmock (not every Debian install has it).
#define BTM_EXPECT_CONTAINS(hay, needle) \
    EXPECT_NE(std::string(hay).find(needle), std::string::npos) << "no \"" << (needle) << "\" in:\n" << (hay)
#define BTM_EXPECT_LACKS(hay, needle) \
    EXPECT_EQ(std::string(hay).find(needle), std::string::npos) << "\"" << (needle) << "\" in:\n" << (hay)

namespace btm::config::test {

// One configuration being built up, with every diagnostic kept as
// "FILE:LINE: TEXT" (or "FILE: TEXT" for line 0).
struct Conf {
    Values v;
    Origin o;
    Options opt;
    std::vector<std::string> diags;

    explicit Conf(const char* program = nullptr) {
        set_defaults(&v, &o);
        opt.program = program;
        opt.max_warnings = 0;
        opt.sink = {collect, this};
        opt.trusted_uid = geteuid();  // the scratch files are the test's own
    }
    Conf(const Conf&) = delete;

    static void collect(void* ctx, const Diagnostic& d) {
        auto* self = static_cast<Conf*>(ctx);
        std::string s = d.file ? d.file : "?";
        if (d.line) s += ":" + std::to_string(d.line);
        s += ": ";
        s += d.text;
        self->diags.push_back(s);
    }
    unsigned parse(std::string_view text, const char* file = "t.conf") {
        return parse_buffer(text.data(), text.size(), file, opt, &v, &o);
    }
    uint64_t get(const char* key) const { return field(v, find_knob(key, std::string_view(key).size())); }
    Source source(const char* key) const { return o.source[find_knob(key, std::string_view(key).size())]; }
    uint32_t line(const char* key) const { return o.line[find_knob(key, std::string_view(key).size())]; }
    std::string file(const char* key) const {
        const char* f = o.file[find_knob(key, std::string_view(key).size())];
        return f ? f : "";
    }
    std::string all_diags() const {
        std::string s;
        for (const auto& d : diags) s += d + "\n";
        return s;
    }
};

// A directory under /tmp, removed with its contents at the end.  Mode 0755 so
// that tests may run helpers as another user inside it.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/btm-config-test-XXXXXX";
        path = mkdtemp(tmpl);
        chmod(path.c_str(), 0755);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string write(const std::string& name, std::string_view content, mode_t mode = 0644) const {
        std::string p = path + "/" + name;
        std::filesystem::create_directories(std::filesystem::path(p).parent_path());
        std::ofstream(p, std::ios::binary | std::ios::trunc).write(content.data(), std::streamsize(content.size()));
        chmod(p.c_str(), mode);
        return p;
    }
    std::string sub(const std::string& name) const { return path + "/" + name; }
};

}  // namespace btm::config::test
