// heap_shape: where a small process's slab pages go, class by class (issue 22
// part 2).  Preloaded after btmalloc (bytes_probe.sh does it, or
// LD_PRELOAD="libbtmalloc.so heap_shape.so"), a destructor walks the chunks
// through the introspection descriptor and writes to $HEAP_SHAPE_FILE one
// line per size class in use:
//   class <size> slabs <n> pages <n> resident <n> bump <slots> used <slots> cap <slots/slab>
// pages and resident (present in /proc/self/pagemap) count the data pages
// of the class's slabs; bump is the slots ever handed out of them, used the
// slots out (with a program, in a thread cache or a fresh run).  Then
// `free_resident <pages>`: free pages of the chunks still backed.
// Reads the library's own headers for the slab layout: build it against the
// tree of the library it inspects.
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/chunk.h"
#include "features/introspect.h"

namespace {

struct PerClass {
    unsigned long slabs, pages, resident, bump, used, cap;
};

bool present(int pm, uintptr_t a, unsigned page_shift) {
    uint64_t e = 0;
    return pread(pm, &e, 8, off_t((a >> page_shift) * 8)) == 8 && (e >> 63);
}

__attribute__((destructor)) void dump() {
    const char* path = getenv("HEAP_SHAPE_FILE");
    auto* d = static_cast<const btm::introspect::Descriptor*>(dlsym(RTLD_DEFAULT, btm::introspect::kSymbol));
    auto* prof = static_cast<const btm::introspect::Profile*>(dlsym(RTLD_DEFAULT, btm::introspect::kProfileSymbol));
    if (!path || !d || !prof) return;
    // dprintf, not stdio: a FILE's buffer would be a malloc in the heap measured.
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) return;
    if (!d->ready) {
        dprintf(out, "no heap\n");
        close(out);
        return;
    }
    int pm = open("/proc/self/pagemap", O_RDONLY);
    PerClass pc[btm::introspect::kProfileClasses] = {};
    unsigned long free_resident = 0;
    const unsigned shift = d->page_shift;
    unsigned nchunks = *reinterpret_cast<const uint32_t*>(d->nchunks);
    auto* groups = reinterpret_cast<const btm::chunks::Group*>(d->registry);
    for (unsigned i = 0; i < nchunks; ++i) {
        const btm::ChunkHeader* c = groups[i / 64].entries[i % 64].chunk;
        if (!c || c->released) continue;
        for (uint32_t p = c->first_page; p < c->npages; ++p) {
            uintptr_t a = reinterpret_cast<uintptr_t>(c) + (uintptr_t(p) << shift);
            uint64_t e = c->pagemap[p];
            bool res = present(pm, a, shift);
            if (!e) {
                free_resident += res;
                continue;
            }
            PerClass& k = pc[btm::pe_class(e)];
            k.pages++;
            k.resident += res;
            if (btm::pe_offset(e) == 0) {
                const btm::Slab& s = c->slabs[p];
                k.slabs++;
                k.bump += s.bump;
                k.used += s.used;
                k.cap = (uint64_t(s.npages) << shift) / prof->class_size[s.cls];
            }
        }
    }
    for (unsigned k = 0; k < prof->nclasses && k < btm::introspect::kProfileClasses; ++k)
        if (pc[k].slabs)
            dprintf(out, "class %u slabs %lu pages %lu resident %lu bump %lu used %lu cap %lu\n", prof->class_size[k],
                    pc[k].slabs, pc[k].pages, pc[k].resident, pc[k].bump, pc[k].used, pc[k].cap);
    dprintf(out, "free_resident %lu\n", free_resident);
    close(out);
    if (pm >= 0) close(pm);
}

}  // namespace
