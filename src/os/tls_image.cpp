// Changing the initial value of one of this object's thread-local words in
// the TLS image, the bytes ld.so copies into every thread it creates.  The
// image lies in the RELRO range (it is relocated at load), so the page is
// made writable for the store and read-only again.  Rare (a configuration
// that outgrows a static table), so linked with the cold code.
#include <elf.h>
#include <link.h>
#include <sys/mman.h>

#include "os/os.h"
#include "os/syscall.h"

// The ELF header of the object this code is linked into (defined by the
// linker when the header is mapped, as it is in every object ld.so loads).
extern "C" const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));

namespace btm::os {

bool retarget_tls_word(uintptr_t from, uintptr_t to) {
    const auto* eh = &__ehdr_start;
    const auto* ph = reinterpret_cast<const ElfW(Phdr)*>(reinterpret_cast<const char*>(eh) + eh->e_phoff);
    uintptr_t base = 0, tls = 0, tls_size = 0, relro = 0, relro_size = 0;
    for (unsigned i = 0; i < eh->e_phnum; ++i) {
        if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0) base = reinterpret_cast<uintptr_t>(eh) - ph[i].p_vaddr;
        if (ph[i].p_type == PT_TLS) tls = ph[i].p_vaddr, tls_size = ph[i].p_filesz;
        if (ph[i].p_type == PT_GNU_RELRO) relro = ph[i].p_vaddr, relro_size = ph[i].p_memsz;
    }
    if (!tls) return false;
    auto* word = reinterpret_cast<uintptr_t*>(base + tls);
    auto* end = reinterpret_cast<uintptr_t*>(base + tls + (tls_size & ~(sizeof(uintptr_t) - 1)));
    while (word != end && *word != from) ++word;
    if (word == end) return false;
    uintptr_t at = reinterpret_cast<uintptr_t>(word);
    bool locked = relro_size && at - (base + relro) < relro_size;
    void* page = reinterpret_cast<void*>(at & ~uintptr_t(page_size() - 1));
    if (locked && sys::failed(sys::mprotect(page, page_size(), PROT_READ | PROT_WRITE))) return false;
    __atomic_store_n(word, to, __ATOMIC_RELEASE);
    if (locked) sys::mprotect(page, page_size(), PROT_READ);
    return true;
}

}  // namespace btm::os
