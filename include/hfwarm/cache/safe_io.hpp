// Opening, creating and reading files under the cache root without following a symlink.
//
// The cache root itself (and the folders above it) is the user's choice and is opened as given.
// Below it, every folder is opened with openat(O_NOFOLLOW | O_DIRECTORY) from the folder above and
// every file with openat(O_NOFOLLOW), so a symlink planted anywhere inside the cache (a repo
// folder, .locks, a temp name) makes the operation fail with a message naming it instead of
// redirecting a write outside the cache.
#pragma once

#include "hfwarm/util/result.hpp"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace hfwarm::cache {

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

// The most hfwarm reads back of a state file it wrote itself (the progress of a download).
inline constexpr std::uint64_t kMaxStateFileBytes = 16 * 1024 * 1024;

// Opens the folder `dir`, which is `root` or lies below it, walking down from `root` one folder at
// a time. With `create`, missing folders (and the root) are created. A symlink on the way, or a
// path that is not under `root`, is an error that names it.
Result<Fd> openCacheDir(const std::filesystem::path& root, const std::filesystem::path& dir, bool create);

// openat(<folder of path>, <name>, flags | O_NOFOLLOW | O_CLOEXEC, mode), the folder opened with
// openCacheDir (created when `flags` has O_CREAT). A symlink at `path` is an error naming it.
Result<Fd> openCacheFile(const std::filesystem::path& root, const std::filesystem::path& path, int flags,
                         mode_t mode = 0644);

// Replaces `path` with `content` atomically: "<path>.tmp" is removed (a leftover of a killed
// writer, or a symlink, never followed), created anew with O_EXCL and renamed over `path`. Nothing
// is flushed to disk: for state one writer at a time rewrites often and checks when it reads it
// back (the progress of a download, saved every 50 ms), where an fsync each time would stall the
// downloads.
Result<void> writeCacheFile(const std::filesystem::path& root, const std::filesystem::path& path,
                            std::string_view content);

// The content of the regular file `path`: nullopt when it is absent; an error when it is a symlink
// or anything else but a regular file, or holds more than `maxBytes`.
Result<std::optional<std::string>> readCacheFile(const std::filesystem::path& root,
                                                 const std::filesystem::path& path, std::uint64_t maxBytes);

// True when `path` is a regular file (not a symlink) of exactly `size` bytes, reached without
// following a symlink below `root`.
bool isCacheFileOfSize(const std::filesystem::path& root, const std::filesystem::path& path,
                       std::uint64_t size);

}  // namespace hfwarm::cache
