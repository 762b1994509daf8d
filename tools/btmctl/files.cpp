#include "files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace btmctl {
namespace {

int fsync_dir(const std::string& dir) {
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    // Some file systems cannot sync a directory; the rename itself is done.
    return err == EINVAL ? 0 : err;
}

}  // namespace

std::string dir_name(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string describe(const std::string& path, int err) {
    return path + ": " + std::strerror(err);
}

int read_file(const std::string& path, std::string* out) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    out->clear();
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            return err;
        }
        if (n == 0) break;
        out->append(buf, size_t(n));
    }
    close(fd);
    return 0;
}

int replace_file(const std::string& path, const std::string& contents, mode_t mode) {
    std::string dir = dir_name(path);
    size_t slash = path.rfind('/');
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    std::string tmpl = dir + "/." + base + ".btmctl-XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    int fd = mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) return errno;
    int err = 0;
    size_t done = 0;
    while (done < contents.size() && err == 0) {
        ssize_t n = write(fd, contents.data() + done, contents.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) err = errno;
        else done += size_t(n);
    }
    if (err == 0 && fchmod(fd, mode) != 0) err = errno;
    if (err == 0 && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && err == 0) err = errno;
    if (err == 0 && rename(name.data(), path.c_str()) != 0) err = errno;
    if (err != 0) {
        unlink(name.data());
        return err;
    }
    return fsync_dir(dir);
}

int remove_file(const std::string& path) {
    if (unlink(path.c_str()) != 0) return errno == ENOENT ? 0 : errno;
    return fsync_dir(dir_name(path));
}

}  // namespace btmctl
