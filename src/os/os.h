// The OS layer: everything btmalloc asks of the kernel, stated once.
//
// Contract: every function here is async-signal-safe, never allocates, never
// touches errno visibly to the caller (callers that must preserve errno save
// it themselves), and reports failure by its return value only.  No policy
// lives here: callers decide what to map, when and how much.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::os {

// The kernel's page size, read once at start-up (4 KiB, 16 KiB or 64 KiB).
size_t page_size();

// Reserves `size` bytes of address space aligned to `align` (a power of two),
// with `below` more bytes just under it: PROT_NONE, MAP_NORESERVE, so neither
// RSS nor overcommit is charged.  Returns the aligned start (the `below`
// bytes end there), or null on failure.  Up to `align` bytes of slack around
// the result stay reserved: trimming them cost two munmap calls per process.
// The whole mapping is marked MADV_NOHUGEPAGE (every transparent huge page
// size): a chunk's pages are given out and returned one by one.
void* reserve_aligned(size_t size, size_t align, size_t below);
// The same under an address-space limit, where the slack counts against the
// program: none of it stays mapped (os/reserve_limited.cpp).
void* reserve_limited(size_t size, size_t align, size_t below);
// Makes [p, p+size) readable and writable (still charged only when touched,
// except under strict overcommit).  Returns false on failure.
bool commit(void* p, size_t size);
// Fresh anonymous read-write memory, page aligned; null on failure.
void* map(size_t size);
// Fresh anonymous read-write memory aligned to `align` (> page size allowed).
void* map_aligned(size_t size, size_t align);
void unmap(void* p, size_t size);
// Marks [p, p+size) (anonymous, private) to read as zeros in a child made by
// fork() or clone() without CLONE_VM (MADV_WIPEONFORK, Linux 4.14); false if
// the kernel refuses.
bool wipe_on_fork(void* p, size_t size);
// Grows or shrinks a mapping, moving it if needed; null on failure.
void* remap(void* p, size_t old_size, size_t new_size);
// Moves the pages of [p, p+size) to [to, to+size) without copying them,
// replacing what was mapped there; [p, p+size) is unmapped after.  False
// (nothing moved) if the range spans more than one kernel mapping (VMA):
// mremap moves within one only.
bool move(void* p, size_t size, void* to);
// Releases the physical pages of [p, p+size); the range stays mapped and reads
// back as zeros, always: where the kernel refuses, the zeros are written and
// false is returned.
bool release(void* p, size_t size);
// Faults [p, p+size) in, writable, ahead of use (MADV_POPULATE_WRITE, or a
// write to each page where the kernel lacks it: the range must hold nothing).
void populate(void* p, size_t size);
// Asks the kernel to page [p, p+size) out now (MADV_PAGEOUT); contents stay
// valid and fault back in on access.  Returns false on failure.
bool page_out(void* p, size_t size);
// Changes the initial value of this object's thread-local word that holds
// `from` to `to`, for the threads created from now on (os/tls_image.cpp);
// false if no such word is found or its page cannot be made writable.
bool retarget_tls_word(uintptr_t from, uintptr_t to);
// Seconds of CLOCK_MONOTONIC_COARSE (cheap: no system call).
uint32_t coarse_seconds();

// Raw, unbuffered write of the whole buffer (retries on EINTR / short write).
void write_all(int fd, const char* s, size_t n);
// Fills buf with random bytes (getrandom, then AT_RANDOM, then time).
void random_bytes(void* buf, size_t n);
// True in secure-execution mode (setuid/setgid/capabilities: AT_SECURE).
bool secure_mode();
// Field `field` of /proc/self/statm in bytes (0: address space mapped, 1:
// resident), 0 if unknown.
uint64_t statm_bytes(unsigned field);
inline uint64_t resident_bytes() { return statm_bytes(1); }
// The calling thread's seccomp mode from /proc/thread-self/status: 0 none,
// 1 strict, 2 filter; -1 when it cannot be read (no /proc).  Three system
// calls (openat, read, close) that every filter worth running allows; asking
// prctl(PR_GET_SECCOMP) instead could itself be what a filter kills for.
int seccomp_mode();
// Limits on the address space (RLIMIT_AS), ~0 where unlimited.
struct AddressSpaceLimit {
    uint64_t soft, hard;
};
AddressSpaceLimit address_space_limit();
// Whether a heap reservation of `bytes` leaves the program room under the
// soft limit `soft` (os/reserve_limited.cpp).
bool heap_leaves_room(uint64_t bytes, uint64_t soft);

}  // namespace btm::os
