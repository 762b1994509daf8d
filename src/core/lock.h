// A test-and-test-and-set spin lock for short critical sections on slow
// paths.  Constant-initialised (usable before any constructor), one byte of
// state, no system calls unless it has to wait: then it yields the CPU so a
// preempted holder can run (this machine has 2 cores).
#pragma once

#include <sched.h>

#include <atomic>

#include "core/base.h"

namespace btm {

BTM_INLINE void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

class SpinLock {
public:
    constexpr SpinLock() = default;

    BTM_INLINE void lock() {
        if (BTM_LIKELY(!locked_.exchange(true, std::memory_order_acquire))) return;
        lock_slow();
    }
    BTM_INLINE bool try_lock() { return !locked_.exchange(true, std::memory_order_acquire); }
    BTM_INLINE void unlock() { locked_.store(false, std::memory_order_release); }
    // Only for the child after fork(), where the holder no longer exists.
    void reset() { locked_.store(false, std::memory_order_relaxed); }
    // Only for a one-thread child (see orphan::check in orphan.cpp): there a
    // held lock has a holder that does not exist.
    bool is_locked() const { return locked_.load(std::memory_order_relaxed); }

private:
    BTM_NOINLINE void lock_slow() {
        for (unsigned spins = 0;; ++spins) {
            while (locked_.load(std::memory_order_relaxed)) {
                if (spins++ < 64) cpu_relax();
                else sched_yield();
            }
            if (!locked_.exchange(true, std::memory_order_acquire)) return;
        }
    }
    std::atomic<bool> locked_{false};
};

class LockGuard {
public:
    explicit LockGuard(SpinLock& l) : l_(l) { l_.lock(); }
    ~LockGuard() { l_.unlock(); }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;

private:
    SpinLock& l_;
};

}  // namespace btm
