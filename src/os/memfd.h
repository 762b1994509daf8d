// File-backed heap memory for Mesh compaction: a memfd (an anonymous tmpfs
// file) per reservation, mapped MAP_SHARED, so that two virtual pages can be
// made to share one physical page (map the same file offset at both) and a
// physical page can be freed while its address stays mapped (punch a hole).
//
// Contract: as os.h (async-signal-safe, no allocation, errno untouched,
// failure by return value).  Offsets and lengths are page multiples.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::os::memfd {

// A new memfd of `size` bytes (sparse: nothing is allocated), close-on-exec;
// -errno on failure (no memfd_create, or a seccomp filter refusing it).
int create(uint64_t size);
void close(int fd);
// Maps [off, off + len) of the file read-write and shared at exactly p,
// replacing whatever was mapped there.
bool map(void* p, size_t len, int fd, uint64_t off);
// Frees the file's pages in [off, off + len): they read back as zeros
// through every mapping of the range.
bool punch(int fd, uint64_t off, size_t len);
// Releases [p, p + len) of a shared mapping (MADV_REMOVE: the file range
// under it is punched, so it reads back as zeros, as os::release promises;
// MADV_DONTNEED would keep the file's pages and their contents).  Where the
// kernel refuses, os::release() (anonymous memory, or zeros written).
bool release(void* p, size_t len);
// Copies the data of [0, len) of `from` into `to` at the same offsets,
// holes left as holes.  `scratch` is page-aligned room for bounce copies of
// `scratch_len` bytes, used only where copy_file_range is refused.
bool copy(int from, int to, uint64_t len, void* scratch, size_t scratch_len);
// Moves `fd` onto the descriptor number `at` (dup3, close-on-exec) and
// closes `fd`: the heap's file keeps its number across fork.
bool replace(int fd, int at);
// pipe2(O_CLOEXEC) and the byte that says "done" through it.
bool pipe(int fds[2]);
void signal_done(int fd);
void wait_done(int fd);

}  // namespace btm::os::memfd
