// Threads, processes and signals around the allocator (RELIABILITY.md rows 7-10):
// producer/consumer cross-thread frees, fork while other threads allocate,
// storms of short-lived threads whose memory outlives them, malloc in a signal
// handler that interrupts a blocked thread, and vfork/posix_spawn from a
// multithreaded process.  Every object carries a pattern that is verified
// before it is freed.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "btmalloc.h"
#include "test_support.h"

extern char** environ;

namespace {

using btm_test::Rng;

struct Item {
    unsigned char* p;
    size_t size;
    uint64_t tag;
};

size_t draw_size(Rng& rng) {
    unsigned r = static_cast<unsigned>(rng.below(100));
    if (r < 80) return rng.log_uniform(9);
    if (r < 97) return rng.log_uniform(14);
    return rng.log_uniform(20);
}

Item make_item(Rng& rng, uint64_t tag) {
    size_t size = draw_size(rng);
    auto* p = static_cast<unsigned char*>(malloc(size));
    if (p != nullptr) btm_test::fill_pattern(p, size, tag);
    return Item{p, size, tag};
}

// Returns false if the item's bytes are not what make_item wrote.
bool check_and_free(const Item& it) {
    bool ok = it.p != nullptr && btm_test::check_pattern(it.p, it.size, it.tag) == it.size;
    free(it.p);
    return ok;
}

// Threads that allocate, fill, verify and free until told to stop, so that
// other tests run while the allocator is busy in other threads.
class Churners {
   public:
    explicit Churners(unsigned n) {
        for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this, i] { churn(i); });
    }
    ~Churners() { stop(); }
    void stop() {
        stop_ = true;
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }
    int errors() const { return errors_.load(); }
    uint64_t ops() const { return ops_.load(); }

   private:
    void churn(unsigned self) {
        Rng rng(77 + self);
        std::vector<Item> ring(64, Item{nullptr, 0, 0});
        uint64_t n = 0;
        while (!stop_.load(std::memory_order_relaxed)) {
            Item& slot = ring[rng.below(ring.size())];
            if (slot.p != nullptr && !check_and_free(slot)) ++errors_;
            slot = make_item(rng, (uint64_t{self} << 40) | n);
            if (slot.p == nullptr) ++errors_;
            ++n;
        }
        for (auto& it : ring)
            if (it.p != nullptr && !check_and_free(it)) ++errors_;
        ops_ += n;
    }
    std::atomic<bool> stop_{false};
    std::atomic<int> errors_{0};
    std::atomic<uint64_t> ops_{0};
    std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------- producer/consumer

class BoundedQueue {
   public:
    explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}
    void push(const Item& it) {
        std::unique_lock<std::mutex> lock(mutex_);
        not_full_.wait(lock, [&] { return items_.size() < capacity_; });
        items_.push_back(it);
        not_empty_.notify_one();
    }
    Item pop() {
        std::unique_lock<std::mutex> lock(mutex_);
        not_empty_.wait(lock, [&] { return !items_.empty(); });
        Item it = items_.front();
        items_.pop_front();
        not_full_.notify_one();
        return it;
    }

   private:
    const size_t capacity_;
    std::mutex mutex_;
    std::condition_variable not_full_, not_empty_;
    std::deque<Item> items_;
};

TEST(ProducerConsumer, ConsumersVerifyAndFreeWhatProducersAllocate) {
    constexpr unsigned kProducers = 3, kConsumers = 3;
    const uint64_t per_producer = uint64_t{1000000} * btm_test::stress_scale();
    BoundedQueue queue(4096);
    std::atomic<int> errors{0};
    std::atomic<uint64_t> consumed{0};
    std::vector<std::thread> threads;
    for (unsigned c = 0; c < kConsumers; ++c) {
        threads.emplace_back([&, c] {
            Rng rng(1000 + c);
            for (;;) {
                Item it = queue.pop();
                if (it.p == nullptr && it.tag == UINT64_MAX) break;
                if (rng.chance(10)) {
                    // A cross-thread realloc: the block moves or grows in the
                    // consumer, far from the producer that allocated it.
                    size_t new_size = it.size + 1 + rng.below(5000);
                    auto* q = static_cast<unsigned char*>(realloc(it.p, new_size));
                    size_t good = q ? btm_test::check_pattern(q, it.size, it.tag) : 0;
                    if (q == nullptr || good != it.size) {
                        ADD_FAILURE() << "realloc(" << static_cast<void*>(it.p) << " of " << it.size << " bytes, "
                                      << new_size << ") = " << static_cast<void*>(q) << ": first wrong byte at "
                                      << good;
                        ++errors;
                        free(q);
                        continue;
                    }
                    it.p = q;
                    free(it.p);
                } else {
                    size_t good = btm_test::check_pattern(it.p, it.size, it.tag);
                    if (good != it.size) {
                        ADD_FAILURE() << "block " << static_cast<void*>(it.p) << " of " << it.size
                                      << " bytes: first wrong byte at " << good;
                        ++errors;
                    }
                    free(it.p);
                }
                ++consumed;
            }
        });
    }
    for (unsigned p = 0; p < kProducers; ++p) {
        threads.emplace_back([&, p] {
            Rng rng(2000 + p);
            for (uint64_t i = 0; i < per_producer; ++i) {
                Item it = make_item(rng, (uint64_t{p} << 40) | i);
                if (it.p == nullptr) {
                    ++errors;
                    continue;
                }
                queue.push(it);
            }
        });
    }
    for (unsigned p = 0; p < kProducers; ++p) threads[kConsumers + p].join();
    for (unsigned c = 0; c < kConsumers; ++c) queue.push(Item{nullptr, 0, UINT64_MAX});
    for (unsigned c = 0; c < kConsumers; ++c) threads[c].join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(consumed.load(), kProducers * per_producer);
}

// ---------------------------------------------------------------- fork

// What a forked child does.  No gtest here: the child reports through its
// exit status, and any hang is ended by alarm().
int child_work(const std::vector<Item>& inherited) {
    alarm(60);
    for (const Item& it : inherited)
        if (!check_and_free(it)) return 2;
    Rng rng(getpid());
    std::vector<Item> items;
    for (int i = 0; i < 4000; ++i) {
        items.push_back(make_item(rng, static_cast<uint64_t>(i)));
        if (items.back().p == nullptr) return 3;
        if (i % 3 == 0) {
            size_t k = rng.below(items.size());
            if (!check_and_free(items[k])) return 4;
            items[k] = items.back();
            items.pop_back();
        }
    }
    // A thread in the child: the allocator's per-thread state must work after fork.
    std::atomic<int> thread_result{-1};
    pthread_t th;
    auto body = [](void* arg) -> void* {
        auto* result = static_cast<std::atomic<int>*>(arg);
        Rng r(5);
        std::vector<Item> v;
        for (int i = 0; i < 2000; ++i) v.push_back(make_item(r, 1000000 + static_cast<uint64_t>(i)));
        int bad = 0;
        for (const Item& it : v)
            if (!check_and_free(it)) ++bad;
        result->store(bad);
        return nullptr;
    };
    if (pthread_create(&th, nullptr, body, &thread_result) != 0) return 5;
    pthread_join(th, nullptr);
    if (thread_result.load() != 0) return 6;
    for (const Item& it : items)
        if (!check_and_free(it)) return 7;
    void* big = malloc(8 << 20);
    if (big == nullptr) return 8;
    memset(big, 0x5a, 8 << 20);
    free(big);
    return 0;
}

TEST(Fork, ChildAllocatesWhileOtherThreadsOfTheParentAllocate) {
    Churners churners(4);
    const int forks = 40 * static_cast<int>(btm_test::stress_scale());
    Rng rng(9);
    for (int i = 0; i < forks; ++i) {
        // Blocks the child inherits and frees.
        std::vector<Item> inherited;
        for (int k = 0; k < 50; ++k) inherited.push_back(make_item(rng, 500000 + static_cast<uint64_t>(k)));
        pid_t pid = fork();
        ASSERT_NE(pid, -1) << strerror(errno);
        if (pid == 0) _exit(child_work(inherited));
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status)) {
            ADD_FAILURE() << "fork " << i << ": child killed by signal " << WTERMSIG(status)
                          << (WTERMSIG(status) == SIGALRM ? " (hung for 60 s: deadlock after fork?)" : "");
            break;
        }
        ASSERT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0) << "fork " << i << ": child failed check " << WEXITSTATUS(status);
        for (const Item& it : inherited) EXPECT_TRUE(check_and_free(it));
    }
    churners.stop();
    EXPECT_EQ(churners.errors(), 0);
    EXPECT_GT(churners.ops(), 0u);
}

// `rounds` forks from the calling thread, each child checking and freeing
// `items` blocks it inherited, then allocating (child_work); the parent
// checks and frees the same blocks.  Counts every failure.
void fork_rounds(uint64_t seed, int rounds, int items, std::atomic<int>& failures) {
    Rng rng(seed);
    for (int i = 0; i < rounds; ++i) {
        std::vector<Item> inherited;
        for (int k = 0; k < items; ++k) inherited.push_back(make_item(rng, static_cast<uint64_t>(k)));
        pid_t pid = fork();
        if (pid == 0) _exit(child_work(inherited));
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ++failures;
        for (const Item& it : inherited)
            if (!check_and_free(it)) ++failures;
    }
}

TEST(Fork, ForkFromASecondaryThread) {
    Churners churners(3);
    std::atomic<int> failures{0};
    std::thread forker([&] { fork_rounds(11, 20, 20, failures); });
    forker.join();
    churners.stop();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(churners.errors(), 0);
}

// Two threads fork at once while others allocate: each fork's handlers must
// unlock what its own prepare handler locked (the second waits for the
// first's locks), and every child can allocate.
TEST(Fork, TwoThreadsForkAtOnce) {
    Churners churners(2);
    std::atomic<int> failures{0};
    std::thread a([&] { fork_rounds(21, 25, 10, failures); });
    std::thread b([&] { fork_rounds(22, 25, 10, failures); });
    a.join();
    b.join();
    churners.stop();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(churners.errors(), 0);
}

// ---------------------------------------------------------------- thread exit

TEST(ThreadExit, StormOfShortLivedThreads) {
    const unsigned total = 5000 * btm_test::stress_scale();
    constexpr unsigned kWave = 32;
    std::mutex pool_mutex;
    std::vector<Item> pool;
    std::atomic<int> errors{0};
    std::atomic<uint64_t> freed_by_others{0};
    Churners churners(1);
    for (unsigned first = 0; first < total; first += kWave) {
        std::vector<std::thread> wave;
        for (unsigned t = first; t < first + kWave && t < total; ++t) {
            wave.emplace_back([&, t] {
                Rng rng(t + 1);
                std::vector<Item> mine;
                for (unsigned i = 0; i < 24; ++i) {
                    mine.push_back(make_item(rng, (uint64_t{t} << 20) | i));
                    if (mine.back().p == nullptr) ++errors;
                }
                // Take memory of threads that have exited and free it here.
                std::vector<Item> taken;
                {
                    std::lock_guard<std::mutex> lock(pool_mutex);
                    for (unsigned i = 0; i < 16 && !pool.empty(); ++i) {
                        size_t k = rng.below(pool.size());
                        taken.push_back(pool[k]);
                        pool[k] = pool.back();
                        pool.pop_back();
                    }
                    // Leave most of this thread's memory behind, for others.
                    for (unsigned i = 0; i < 18; ++i) pool.push_back(mine[i]);
                }
                for (const Item& it : taken)
                    if (!check_and_free(it)) ++errors;
                freed_by_others += taken.size();
                // Free a few of its own, so its cache holds slots when it exits.
                for (unsigned i = 18; i < mine.size(); ++i)
                    if (!check_and_free(mine[i])) ++errors;
            });
        }
        for (auto& th : wave) th.join();
    }
    for (const Item& it : pool)
        if (!check_and_free(it)) ++errors;
    churners.stop();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(churners.errors(), 0);
    EXPECT_GT(freed_by_others.load(), total);
}

TEST(ThreadExit, DetachedThreadsExitWhileOthersFreeTheirMemory) {
    const unsigned total = 1000 * btm_test::stress_scale();
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<Item> handed;
    unsigned finished = 0;
    std::atomic<int> errors{0};
    for (unsigned t = 0; t < total; ++t) {
        std::thread([&, t] {
            Rng rng(t + 7);
            std::vector<Item> mine;
            for (unsigned i = 0; i < 8; ++i) mine.push_back(make_item(rng, (uint64_t{t} << 20) | i));
            std::lock_guard<std::mutex> lock(mutex);
            handed.insert(handed.end(), mine.begin(), mine.end());
            ++finished;
            cv.notify_one();
        }).detach();
        if (t % 16 == 15) {
            // Free while the detached threads may still be exiting.
            std::vector<Item> batch;
            {
                std::lock_guard<std::mutex> lock(mutex);
                batch.swap(handed);
            }
            for (const Item& it : batch)
                if (!check_and_free(it)) ++errors;
        }
    }
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return finished == total; }));
    for (const Item& it : handed)
        if (!check_and_free(it)) ++errors;
    handed.clear();
    EXPECT_EQ(errors.load(), 0);
}

TEST(ThreadExit, CachesOfExitedThreadsAreReturned) {
    if constexpr (btm_test::kAgainstGlibc) {
        GTEST_SKIP() << "built against glibc: btm_stats is not linked";
    } else {
        for (unsigned wave = 0; wave < 50; ++wave) {
            std::vector<std::thread> threads;
            for (unsigned t = 0; t < 16; ++t)
                threads.emplace_back([t] {
                    Rng rng(t);
                    for (int i = 0; i < 200; ++i) {
                        Item it = make_item(rng, static_cast<uint64_t>(i));
                        free(it.p);
                    }
                });
            for (auto& th : threads) th.join();
        }
        // 800 threads have exited; their caches must not stay alive.
        struct btm_stats st {};
        st.version = BTM_STATS_VERSION;
        ASSERT_EQ(btm_stats(&st), 0);
        EXPECT_LE(st.thread_caches, 16u) << "thread caches alive after 800 threads exited";
    }
}

// ---------------------------------------------------------------- signals

std::atomic<int> g_handler_runs{0};
std::atomic<int> g_handler_errors{0};

void allocating_handler(int) {
    int saved = errno;
    static const size_t sizes[] = {1, 16, 100, 1000, 5000, 70000, 3u << 20};
    for (size_t n : sizes) {
        auto* p = static_cast<unsigned char*>(malloc(n));
        if (p == nullptr) {
            ++g_handler_errors;
            continue;
        }
        btm_test::fill_pattern(p, n, n);
        if (btm_test::check_pattern(p, n, n) != n) ++g_handler_errors;
        free(p);
    }
    void* q = nullptr;
    if (posix_memalign(&q, 4096, 300) != 0) ++g_handler_errors;
    free(q);
    ++g_handler_runs;
    errno = saved;
}

// 'S' (sleeping) in /proc/self/task/TID/stat: the thread is inside a blocking
// system call, not inside malloc.
bool thread_is_sleeping(pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    const char* close_paren = strrchr(buf, ')');
    return close_paren != nullptr && close_paren[1] == ' ' && close_paren[2] == 'S';
}

struct Blocker {
    int fd;
    std::atomic<pid_t> tid{0};
    std::atomic<int> reads{0};
};

// Blocks in read() on a pipe; never allocates before the first signal, so the
// handler's malloc may be this thread's first call into the allocator.
void* blocker_main(void* arg) {
    auto* b = static_cast<Blocker*>(arg);
    b->tid = static_cast<pid_t>(syscall(SYS_gettid));
    char c = 0;
    for (;;) {
        ssize_t n = read(b->fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        ++b->reads;
        if (n <= 0 || c == 'q') break;
    }
    return nullptr;
}

bool wait_until(const std::function<bool()>& cond, int seconds) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!cond()) {
        if (std::chrono::steady_clock::now() > end) return false;
        usleep(200);
    }
    return true;
}

class SignalTest : public ::testing::Test {
   protected:
    void SetUp() override {
        struct sigaction sa {};
        sa.sa_handler = allocating_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        ASSERT_EQ(sigaction(SIGUSR1, &sa, &old_), 0);
        g_handler_runs = 0;
        g_handler_errors = 0;
    }
    void TearDown() override { sigaction(SIGUSR1, &old_, nullptr); }

    // Starts a blocker thread, signals it `signals` times while it sleeps in
    // read(), then releases it.
    void interrupt(int signals) {
        int fds[2];
        ASSERT_EQ(pipe(fds), 0);
        Blocker b;
        b.fd = fds[0];
        pthread_t th;
        ASSERT_EQ(pthread_create(&th, nullptr, blocker_main, &b), 0);
        ASSERT_TRUE(wait_until([&] { return b.tid.load() != 0; }, 10));
        for (int i = 0; i < signals; ++i) {
            int before = g_handler_runs.load();
            ASSERT_TRUE(wait_until([&] { return thread_is_sleeping(b.tid.load()); }, 10))
                << "the blocker never went to sleep in read()";
            ASSERT_EQ(pthread_kill(th, SIGUSR1), 0);
            ASSERT_TRUE(wait_until([&] { return g_handler_runs.load() > before; }, 10))
                << "the signal handler did not finish (deadlock in malloc?)";
        }
        ASSERT_EQ(write(fds[1], "q", 1), 1);
        pthread_join(th, nullptr);
        close(fds[0]);
        close(fds[1]);
    }
    struct sigaction old_ {};
};

TEST_F(SignalTest, MallocInAHandlerThatInterruptsABlockedThread) {
    interrupt(200);
    EXPECT_EQ(g_handler_runs.load(), 200);
    EXPECT_EQ(g_handler_errors.load(), 0);
}

TEST_F(SignalTest, HandlerMallocIsTheThreadsFirstAllocation) {
    for (int i = 0; i < 40; ++i) interrupt(1);
    EXPECT_EQ(g_handler_runs.load(), 40);
    EXPECT_EQ(g_handler_errors.load(), 0);
}

// ---------------------------------------------------------------- vfork and posix_spawn

TEST(Spawn, VforkExecFromAMultithreadedProcess) {
    Churners churners(3);
    // Everything the child needs is prepared before vfork: the child shares
    // the parent's memory and must not allocate.
    char path[] = "/bin/true";
    char* argv[] = {path, nullptr};
    for (int i = 0; i < 100; ++i) {
        pid_t pid = vfork();
        if (pid == 0) {
            execve(path, argv, environ);
            _exit(127);
        }
        ASSERT_GT(pid, 0) << strerror(errno);
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status)) << "iteration " << i;
        ASSERT_EQ(WEXITSTATUS(status), 0) << "iteration " << i;
    }
    churners.stop();
    EXPECT_EQ(churners.errors(), 0);
}

TEST(Spawn, PosixSpawnFromAMultithreadedProcess) {
    Churners churners(3);
    char sh[] = "/bin/sh", dash_c[] = "-c", script[] = "exit 3";
    char* argv[] = {sh, dash_c, script, nullptr};
    char truth[] = "true";
    char* argv_true[] = {truth, nullptr};
    for (int i = 0; i < 100; ++i) {
        posix_spawn_file_actions_t actions;
        ASSERT_EQ(posix_spawn_file_actions_init(&actions), 0);
        ASSERT_EQ(posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0), 0);
        pid_t pid = 0;
        ASSERT_EQ(posix_spawn(&pid, sh, &actions, nullptr, argv, environ), 0);
        posix_spawn_file_actions_destroy(&actions);
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status)) << "iteration " << i;
        ASSERT_EQ(WEXITSTATUS(status), 3) << "iteration " << i;

        ASSERT_EQ(posix_spawnp(&pid, truth, nullptr, nullptr, argv_true, environ), 0);
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "iteration " << i;
    }
    churners.stop();
    EXPECT_EQ(churners.errors(), 0);
}

}  // namespace
