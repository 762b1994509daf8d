#include "symbolizer.h"

#include <cxxabi.h>
#include <elfutils/libdwfl.h>

#include <gelf.h>

#include <cstdio>
#include <cstdlib>
#include <map>

namespace btm_heap {
namespace {

char* debuginfo_path = nullptr;  // libdwfl's default search path

const Dwfl_Callbacks kProcCallbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = &debuginfo_path,
};

const Dwfl_Callbacks kOfflineCallbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

std::string demangle(const char* name) {
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    std::string s = status == 0 && out ? out : name;
    std::free(out);
    return s;
}

std::string base_name(const char* path) {
    std::string s = path ? path : "";
    return s.substr(s.rfind('/') + 1);
}

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)v);
    return buf;
}

bool build_id_of(Dwfl_Module* mod, std::string* out) {
    const unsigned char* bits = nullptr;
    GElf_Addr vaddr;
    int n = dwfl_module_build_id(mod, &bits, &vaddr);
    if (n <= 0) return false;
    out->clear();
    for (int i = 0; i < n; ++i) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", bits[i]);
        *out += b;
    }
    return true;
}

}  // namespace

struct Symbolizer::Impl {
    Dwfl* dwfl = nullptr;
    uint64_t next_base = 0x10000000;  // where the next offline module goes
    std::map<std::string, Dwfl_Module*> modules;  // by path and build-id; null = not found
};

Symbolizer::Symbolizer(pid_t pid) : impl_(new Impl) {
    impl_->dwfl = dwfl_begin(&kProcCallbacks);
    if (!impl_->dwfl) return;
    if (dwfl_linux_proc_report(impl_->dwfl, pid) != 0 || dwfl_report_end(impl_->dwfl, nullptr, nullptr) != 0) {
        dwfl_end(impl_->dwfl);
        impl_->dwfl = nullptr;
    }
}

Symbolizer::Symbolizer() : impl_(new Impl) {
    impl_->dwfl = dwfl_begin(&kOfflineCallbacks);
}

Symbolizer::~Symbolizer() {
    if (impl_->dwfl) dwfl_end(impl_->dwfl);
}

SiteName Symbolizer::name_in_module(const std::string& path, const std::string& build_id, uint64_t file_offset) {
    SiteName n;
    n.module = base_name(path.c_str());
    n.module_offset = file_offset;
    Dwfl* d = impl_->dwfl;
    if (!d) return n;
    std::string key = path + " " + build_id;
    auto it = impl_->modules.find(key);
    if (it == impl_->modules.end()) {
        uint64_t base = impl_->next_base;
        dwfl_report_begin_add(d);
        Dwfl_Module* mod = dwfl_report_elf(d, n.module.c_str(), path.c_str(), -1, base, false);
        std::string id;
        if (mod && !build_id.empty() && build_id != "-" && (!build_id_of(mod, &id) || id != build_id)) mod = nullptr;
        if (!mod && build_id.size() > 2 && build_id != "-") {
            // The module's debug file carries its symbols and its layout.
            std::string debug =
                "/usr/lib/debug/.build-id/" + build_id.substr(0, 2) + "/" + build_id.substr(2) + ".debug";
            mod = dwfl_report_elf(d, n.module.c_str(), debug.c_str(), -1, base, false);
        }
        dwfl_report_end(d, nullptr, nullptr);
        if (mod) {
            Dwarf_Addr high = 0;
            dwfl_module_info(mod, nullptr, nullptr, &high, nullptr, nullptr, nullptr, nullptr);
            impl_->next_base = (high + 0x20000000) & ~uint64_t(0xfffffff);
        }
        it = impl_->modules.emplace(key, mod).first;
    }
    Dwfl_Module* mod = it->second;
    GElf_Addr bias = 0;
    Elf* elf = mod ? dwfl_module_getelf(mod, &bias) : nullptr;
    size_t nph = 0;
    if (!elf || elf_getphdrnum(elf, &nph) != 0) return n;
    for (size_t i = 0; i < nph; ++i) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, int(i), &ph) || ph.p_type != PT_LOAD || file_offset < ph.p_offset ||
            file_offset - ph.p_offset >= ph.p_filesz)
            continue;
        SiteName named = name(bias + ph.p_vaddr + (file_offset - ph.p_offset));
        named.module = n.module;
        named.module_offset = file_offset;
        return named;
    }
    return n;
}

SiteName Symbolizer::name(uint64_t return_address) const {
    SiteName n;
    Dwfl* d = impl_->dwfl;
    if (!d || return_address == 0) return n;
    Dwarf_Addr call = return_address - 1;
    Dwfl_Module* mod = dwfl_addrmodule(d, call);
    if (!mod) return n;
    Dwarf_Addr start = 0;
    const char* file = nullptr;
    const char* mname = dwfl_module_info(mod, nullptr, &start, nullptr, nullptr, nullptr, &file, nullptr);
    n.module = base_name(file ? file : mname);
    n.module_offset = return_address - start;
    GElf_Off off = 0;
    GElf_Sym sym;
    if (const char* s = dwfl_module_addrinfo(mod, call, &off, &sym, nullptr, nullptr, nullptr)) {
        n.function = demangle(s);
        n.function_offset = off + 1;
    }
    if (Dwfl_Line* line = dwfl_module_getsrc(mod, call)) {
        int lineno = 0;
        if (const char* src = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr)) {
            n.file = src;
            n.line = lineno;
        }
    }
    return n;
}

std::string describe(const SiteName& n) {
    std::string out = n.function.empty() ? n.module + "+" + hex(n.module_offset)
                                         : n.function + "+" + hex(n.function_offset) + " (" + n.module + ")";
    if (!n.file.empty()) out += " " + n.file + ":" + std::to_string(n.line);
    return out;
}

}  // namespace btm_heap
