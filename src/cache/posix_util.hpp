// POSIX helpers private to the cache module: owned descriptors, errno messages, and walking
// folders under a repo folder without following symlinks out of the cache.
#pragma once

#include "hfwarm/util/result.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::cache::detail {

// An owned file descriptor, closed on destruction.
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

  private:
    int fd_ = -1;
};

// strerror text for `err`.
std::string errnoText(int err);

// "<what> <path>: <strerror>"
Error osError(std::string_view what, const std::filesystem::path& path, int err);

// `n` random lower-case hex digits for temp file names.
std::string randomHex(std::size_t n);

// Splits a validated repo path on "/".
std::vector<std::string> splitPath(std::string_view path);

// Opens `base` (which must exist or, with `create`, is created with its parents) and then each of
// `segments` below it, creating missing ones when `create` is set. A segment that is a symlink is
// followed only when it resolves inside `cacheRoot`; one leading out of the cache is an error.
Result<Fd> openDirUnder(const std::filesystem::path& base, const std::vector<std::string>& segments,
                        const std::filesystem::path& cacheRoot, bool create);

// Writes `content` to `name` in the folder `dirFd` atomically: a temp file in the same folder,
// fsync, rename over `name`, fsync of the folder. `shownPath` is used in messages.
Result<void> writeFileAtomic(int dirFd, const std::string& name, std::string_view content,
                             const std::filesystem::path& shownPath);

}  // namespace hfwarm::cache::detail
