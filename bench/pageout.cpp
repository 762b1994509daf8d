// pageout: cold tiering under load.  A 60 MiB cold set (4 KiB objects, never
// touched again) sits beside a hot thread that churns 64 B objects.  After the
// cold set has aged, it is paged out and the program reports: bytes
// submitted, time taken, RSS before and after and the share of the cold set
// evicted, and the hot thread's throughput in the window around the pageout
// against the window before it.
//   pageout               the main thread calls btm_pageout_cold(1) (found
//                         with dlsym, so this program links no allocator)
//   pageout BTM_PAGEOUT   btm-pageout --pid <this process> --min-age 1 pages
//                         it out from outside (as the timer does; needs
//                         root); the time is that whole run, and the bytes
//                         are those it wrote back into the descriptor
// Anonymous memory needs a swap device to be evicted; the program says so
// when /proc/swaps is empty.  Without btmalloc it reports nothing but the
// missing symbol.
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

double rss_mib() {
    std::ifstream f("/proc/self/statm");
    long size = 0, resident = 0;
    f >> size >> resident;
    return double(resident) * double(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

bool have_swap() {
    std::ifstream f("/proc/swaps");
    std::string line;
    std::getline(f, line);
    return static_cast<bool>(std::getline(f, line));
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs btm-pageout on this process; the bytes it paged out (the word it
// writes back into btm_introspect_v1), or 0.
size_t pageout_from_outside(const char* tool) {
    std::string pid = std::to_string(getpid());
    pid_t child = fork();
    if (child == 0) {
        unsetenv("LD_PRELOAD");
        execl(tool, tool, "--pid", pid.c_str(), "--min-age", "1", "--wait", "0", static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::printf("# %s failed (status %d)\n", tool, status);
        return 0;
    }
    const auto* d = static_cast<const unsigned char*>(dlsym(RTLD_DEFAULT, "btm_introspect_v1"));
    if (!d) return 0;
    uint32_t size;
    uint64_t bytes;
    std::memcpy(&size, d + 12, 4);
    std::memcpy(&bytes, d + size - 16, 8);  // last_pageout_bytes, before the count
    return size_t(bytes);
}

}  // namespace

int main(int argc, char** argv) {
    const char* tool = argc > 1 ? argv[1] : nullptr;
    using PageoutFn = size_t (*)(unsigned);
    auto pageout = reinterpret_cast<PageoutFn>(dlsym(RTLD_DEFAULT, "btm_pageout_cold"));
    if (!pageout) {
        std::printf("# btm_pageout_cold not found: run under LD_PRELOAD=libbtmalloc.so\n");
        return 0;
    }
    if (!have_swap()) std::printf("# no swap device: nothing can be evicted, only submitted\n");
    constexpr size_t kObj = 4096, kCold = size_t(60) << 20;
    std::vector<char*> cold;
    for (size_t i = 0; i < kCold / kObj; ++i) {
        char* p = static_cast<char*>(std::malloc(kObj));
        std::memset(p, int(i), kObj);
        cold.push_back(p);
    }
    std::atomic<uint64_t> ops{0};
    std::atomic<bool> stop{false};
    std::thread hot([&] {
        std::vector<void*> ring(256, nullptr);
        uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            size_t k = (n * 2654435761u) % ring.size();
            std::free(ring[k]);
            ring[k] = std::malloc(64);
            static_cast<char*>(ring[k])[0] = char(n);
            if ((++n & 1023) == 0) ops.fetch_add(1024, std::memory_order_relaxed);
        }
        for (void* p : ring) std::free(p);
    });
    sleep(2);  // the cold set ages past min_age
    auto window = [&](double seconds) {
        uint64_t a = ops.load();
        double t0 = now_s();
        usleep(useconds_t(seconds * 1e6));
        return double(ops.load() - a) / (now_s() - t0) / 1e6;
    };
    const double base_mops = window(0.5);
    const double rss0 = rss_mib();
    uint64_t a = ops.load();
    double t0 = now_s();
    const size_t submitted = tool ? pageout_from_outside(tool) : pageout(1);
    const double took_ms = (now_s() - t0) * 1e3;
    usleep(100000);
    const double during_mops = double(ops.load() - a) / (now_s() - t0) / 1e6;
    const double rss1 = rss_mib();
    stop = true;
    hot.join();
    size_t bad = 0;
    for (size_t i = 0; i < cold.size(); ++i)
        for (size_t k = 0; k < kObj; k += 512) bad += cold[i][k] != char(i);
    std::printf("pageout_delivery %s\n", tool ? "btm-pageout (outside)" : "btm_pageout_cold (inside)");
    std::printf("pageout_cold_mib %.1f MiB\n", double(kCold) / 1048576.0);
    std::printf("pageout_submitted_mib %.1f MiB\n", double(submitted) / 1048576.0);
    std::printf("pageout_time %.1f ms\n", took_ms);
    std::printf("pageout_rss_before %.1f MiB\npageout_rss_after %.1f MiB\n", rss0, rss1);
    std::printf("pageout_evicted %.0f %%\n", (rss0 - rss1) / (double(kCold) / 1048576.0) * 100.0);
    std::printf("pageout_hot_base %.2f Mops\npageout_hot_during %.2f Mops\n", base_mops, during_mops);
    std::printf("pageout_cold_bytes_wrong %zu\n", bad);
    return bad ? 1 : 0;
}
