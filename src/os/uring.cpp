#include "os/uring.h"

#include "os/os.h"

#if BTM_CFG_URING
#include <errno.h>
#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace btm::os {

static_assert(sizeof(io_uring) <= 256, "AsyncRelease::ring_ too small");

namespace {
io_uring* as_ring(unsigned char* p) { return reinterpret_cast<io_uring*>(p); }
}  // namespace

bool AsyncRelease::open(unsigned entries) {
    if (open_) return true;
    int saved = errno;
    memset(ring_, 0, sizeof ring_);
    int r = io_uring_queue_init(entries, as_ring(ring_), 0);
    errno = saved;
    open_ = r == 0;
    return open_;
}

size_t AsyncRelease::release(const PageRange* ranges, size_t n) {
    if (!open_) {
        for (size_t i = 0; i < n; ++i) os::release(reinterpret_cast<void*>(ranges[i].addr), ranges[i].len);
        return 0;
    }
    int saved = errno;
    io_uring* ring = as_ring(ring_);
    size_t done_async = 0;
    size_t next = 0;
    while (next < n) {
        size_t batch = 0;
        for (; next < n; ++next, ++batch) {
            io_uring_sqe* sqe = io_uring_get_sqe(ring);
            if (!sqe) break;
            io_uring_prep_madvise(sqe, reinterpret_cast<void*>(ranges[next].addr), off_t(ranges[next].len),
                                  MADV_DONTNEED);
            io_uring_sqe_set_data64(sqe, next);
        }
        int sub = io_uring_submit_and_wait(ring, unsigned(batch));
        if (sub < 0) {
            // The ring is unusable: release this batch and the rest inline.
            for (size_t i = next - batch; i < n; ++i)
                os::release(reinterpret_cast<void*>(ranges[i].addr), ranges[i].len);
            forget();
            break;
        }
        for (size_t seen = 0; seen < batch;) {
            io_uring_cqe* cqe = nullptr;
            if (io_uring_wait_cqe(ring, &cqe) != 0 || !cqe) break;
            size_t i = size_t(io_uring_cqe_get_data64(cqe));
            int res = cqe->res;
            io_uring_cqe_seen(ring, cqe);
            ++seen;
            if (res == 0) {
                done_async += ranges[i].len;
                continue;
            }
            os::release(reinterpret_cast<void*>(ranges[i].addr), ranges[i].len);
            if (res == -EINVAL || res == -EOPNOTSUPP) open_ = false;  // no IORING_OP_MADVISE here
        }
        if (!open_) {
            for (size_t i = next; i < n; ++i) os::release(reinterpret_cast<void*>(ranges[i].addr), ranges[i].len);
            forget();
            break;
        }
    }
    errno = saved;
    return done_async;
}

void AsyncRelease::forget() {
    if (!open_ && as_ring(ring_)->ring_fd <= 0) return;
    int saved = errno;
    io_uring_queue_exit(as_ring(ring_));
    errno = saved;
    open_ = false;
    memset(ring_, 0, sizeof ring_);
}

}  // namespace btm::os

#else

namespace btm::os {

bool AsyncRelease::open(unsigned) { return false; }
size_t AsyncRelease::release(const PageRange* r, size_t n) {
    for (size_t i = 0; i < n; ++i) os::release(reinterpret_cast<void*>(r[i].addr), r[i].len);
    return 0;
}
void AsyncRelease::forget() {}

}  // namespace btm::os

#endif
