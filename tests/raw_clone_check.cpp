// RELIABILITY.md row 8: a raw clone(2) without CLONE_VM copies the process
// like fork() but runs no pthread_atfork handler, so the child inherits the
// allocator's locks in the state the parent's other threads left them.
// Three threads allocate and free blocks of up to 1 MiB while the main
// thread clones ROUNDS children; each child allocates and frees 4,000 blocks
// of up to 6 KB (12 MB live at its peak), which reaches the shared page
// heap, then grows a buffer to 2 MiB by realloc.  A child stuck on a lock is
// killed by its alarm; one whose malloc fails exits 2, one whose realloc
// loses bytes exits 3, one whose usable size is short exits 4.  Before the orphan mode (src/core/globals.h) about one child
// in 20 hung on the page heap's lock; in a few percent of the children a
// lock is held and they now run on the boot arena and their own mappings.
//
// usage: raw_clone_check [ROUNDS]   (default 30; exit 1 if a child failed)
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 30;
    if (rounds <= 0) {
        fprintf(stderr, "usage: raw_clone_check [ROUNDS]\n");
        return 2;
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> churners;
    for (unsigned t = 0; t < 3; ++t)
        churners.emplace_back([&stop, t] {
            std::vector<void*> ring(64);
            uint64_t s = 77 + t;
            while (!stop.load(std::memory_order_relaxed)) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                void*& slot = ring[(s >> 20) % ring.size()];
                free(slot);
                unsigned r = unsigned(s >> 40) % 100;
                size_t n = size_t(16) << ((s >> 33) % (r < 80 ? 6 : r < 97 ? 10 : 16));
                slot = malloc(n);
                if (slot) memset(slot, 1, n < 256 ? n : 256);
            }
            for (void* p : ring) free(p);
        });
    int hung = 0, failed = 0;
    for (int i = 0; i < rounds; ++i) {
        long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) {
            alarm(10);
            static void* blocks[4000];
            for (int k = 0; k < 4000; ++k) {
                blocks[k] = malloc(size_t(16 + (k * 37) % 6000));
                if (!blocks[k]) _exit(2);
                memset(blocks[k], 0x6b, 16);
            }
            // A buffer that grows by realloc to 2 MiB keeps its contents.
            size_t size = 100;
            auto* buf = static_cast<unsigned char*>(malloc(size));
            if (!buf) _exit(2);
            memset(buf, 0x5c, size);
            while (size < (size_t{2} << 20)) {
                auto* grown = static_cast<unsigned char*>(realloc(buf, size * 2));
                if (!grown) _exit(2);
                for (size_t k = 0; k < size; ++k)
                    if (grown[k] != 0x5c) _exit(3);
                if (malloc_usable_size(grown) < size * 2) _exit(4);
                memset(grown + size, 0x5c, size);
                buf = grown;
                size *= 2;
            }
            free(buf);
            for (void* b : blocks) free(b);
            _exit(0);
        }
        if (pid < 0) {
            perror("clone");
            return 2;
        }
        int status = 0;
        waitpid(pid_t(pid), &status, 0);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
            ++hung;
            printf("round %d: the child hung (killed by its alarm after 10 s)\n", i);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            ++failed;
            printf("round %d: the child failed, status %#x\n", i, status);
        }
    }
    stop = true;
    for (auto& t : churners) t.join();
    printf("%d of %d raw-clone children hung, %d failed otherwise\n", hung, rounds, failed);
    return hung || failed ? 1 : 0;
}
