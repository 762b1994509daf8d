// Batched page release through io_uring (IORING_OP_MADVISE), for the
// background thread.  Contract: open() fails (returns false) whenever
// io_uring cannot be used -- no support compiled in, an old kernel,
// kernel.io_uring_disabled, or a seccomp filter that refuses io_uring_setup --
// and the caller then uses os::release() instead.  Never allocates.
#pragma once

#include <cstddef>
#include <cstdint>

namespace btm::os {

struct PageRange {
    uintptr_t addr;
    size_t len;
};

class AsyncRelease {
public:
    bool open(unsigned entries);
    bool is_open() const { return open_; }
    // Releases every range, in batches of the ring's size.  A range whose
    // operation the kernel refuses is released with madvise(2) instead; the
    // return value counts only the bytes released through the ring.  If the
    // kernel refuses IORING_OP_MADVISE itself, the ring is closed for good.
    size_t release(const PageRange* r, size_t n);
    // After fork: drops the parent's ring without touching the parent's use of it.
    void forget();

private:
    bool open_ = false;
    alignas(8) unsigned char ring_[256] = {};  // struct io_uring, kept opaque here (zeroed: constant-initialised)
};

}  // namespace btm::os
