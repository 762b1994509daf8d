// A small C++ program for library_text_pages.sh: plain and sized new and
// delete through std::string and std::vector, then asleep for the
// measurement (seconds given, default 30).  Not linked with btmalloc: the
// test preloads it.
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

int main(int argc, char** argv) {
    std::vector<std::string> v;
    for (int i = 0; i < 1000; ++i) v.emplace_back(size_t(40 + i % 100), 'x');
    v.clear();
    v.shrink_to_fit();
    sleep(argc > 1 ? unsigned(atoi(argv[1])) : 30u);
}
