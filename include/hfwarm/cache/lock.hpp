// The per-blob advisory lock shared with huggingface_hub: <root>/.locks/<repo-folder>/<etag>.lock,
// BSD flock(LOCK_EX), as Python's filelock takes it.
#pragma once

#include "hfwarm/util/result.hpp"

#include <filesystem>
#include <optional>

namespace hfwarm::cache {

class BlobLock {
  public:
    // Tries once, without blocking: nullopt when another process (or another open file in this
    // one) holds the lock, so an async caller polls with a timer and never stalls its event loop.
    // Creates the lock file's folder and the file (mode 0664, as filelock) below `root` without
    // following a symlink (one in the way is an error naming it). Python's filelock
    // unlinks the file on release, so a lock taken on an unlinked file is dropped and retried.
    // An error means the file cannot be opened or the file system has no flock.
    static Result<std::optional<BlobLock>> tryAcquire(const std::filesystem::path& root,
                                                      const std::filesystem::path& path);

    BlobLock(BlobLock&& other) noexcept;
    BlobLock& operator=(BlobLock&& other) noexcept;
    BlobLock(const BlobLock&) = delete;
    BlobLock& operator=(const BlobLock&) = delete;
    // Unlocks; the file stays (unlinking it would race with other lockers).
    ~BlobLock();

    const std::filesystem::path& path() const { return path_; }

  private:
    BlobLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
    void release();

    int fd_ = -1;
    std::filesystem::path path_;
};

}  // namespace hfwarm::cache
