#include "hfwarm/cache/lock.hpp"

#include "hfwarm/cache/safe_io.hpp"
#include "posix_util.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace hfwarm::cache {

namespace fs = std::filesystem;

Result<std::optional<BlobLock>> BlobLock::tryAcquire(const fs::path& root, const fs::path& path) {
    // A release by Python's filelock unlinks the file; each unlink we lose to costs one more round.
    // The bound only matters under a storm of lockers, and busy is then the honest answer.
    constexpr int kAttempts = 8;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        auto opened = openCacheFile(root, path, O_RDWR | O_CREAT, 0664);
        if (!opened) return opened.error();
        Fd fd = std::move(*opened);
        // filelock sets the mode explicitly so other users of a shared cache can open the file
        // despite their umask; a file owned by someone else refuses fchmod, which is fine.
        ::fchmod(fd.get(), 0664);
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK || errno == EINTR) return std::optional<BlobLock>();
            return makeError("cannot lock " + path.string() + ": " + detail::errnoText(errno) +
                             " (the file system may not support flock; put the cache on a local disk)");
        }
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) return detail::osError("cannot inspect the lock file", path, errno);
        if (st.st_nlink == 0) continue;
        return std::optional<BlobLock>(BlobLock(fd.release(), path));
    }
    return std::optional<BlobLock>();
}

BlobLock::BlobLock(BlobLock&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
    other.fd_ = -1;
}

BlobLock& BlobLock::operator=(BlobLock&& other) noexcept {
    if (this != &other) {
        release();
        fd_ = other.fd_;
        path_ = std::move(other.path_);
        other.fd_ = -1;
    }
    return *this;
}

BlobLock::~BlobLock() {
    release();
}

void BlobLock::release() {
    if (fd_ < 0) return;
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    fd_ = -1;
}

}  // namespace hfwarm::cache
