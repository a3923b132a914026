#include "hfwarm/cache/safe_io.hpp"

#include "posix_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

namespace hfwarm::cache {

namespace fs = std::filesystem;
using detail::osError;

Fd& Fd::operator=(Fd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.release();
    }
    return *this;
}

Fd::~Fd() {
    if (fd_ >= 0) ::close(fd_);
}

namespace {

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

Error symlinkRefused(const fs::path& shown, const fs::path& root) {
    return makeError("refusing to use " + shown.string() +
                     ": it is a symlink, and hfwarm never follows one inside the cache " + root.string() +
                     "; replace it with a real folder or file (or remove it) and run again");
}

// The folders from `root` down to `dir`, or an error when `dir` is not under `root`.
Result<std::vector<std::string>> stepsBelow(const fs::path& root, const fs::path& dir) {
    const fs::path rel = dir.lexically_normal().lexically_relative(root.lexically_normal());
    if (rel.empty())
        return makeError("cannot use " + dir.string() + ": it is not inside the cache " + root.string());
    std::vector<std::string> steps;
    for (const fs::path& part : rel) {
        const std::string name = part.string();
        if (name == "..")
            return makeError("cannot use " + dir.string() + ": it is not inside the cache " + root.string());
        if (name == "." || name.empty()) continue;
        steps.push_back(name);
    }
    return steps;
}

}  // namespace

Result<Fd> openCacheDir(const fs::path& root, const fs::path& dir, bool create) {
    auto steps = stepsBelow(root, dir);
    if (!steps) return steps.error();
    if (create) {
        std::error_code ec;
        fs::create_directories(root, ec);
        if (ec) return osError("cannot create the cache folder", root, ec.value());
    }
    Fd current(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!current) return osError("cannot open the cache folder", root, errno);
    fs::path shown = root;
    for (const std::string& step : *steps) {
        shown /= step;
        Fd next(::openat(current.get(), step.c_str(), kDirFlags));
        if (!next && errno == ENOENT && create) {
            if (::mkdirat(current.get(), step.c_str(), 0777) != 0 && errno != EEXIST)
                return osError("cannot create the folder", shown, errno);
            next = Fd(::openat(current.get(), step.c_str(), kDirFlags));
        }
        if (!next) {
            const int err = errno;
            struct stat st {};
            if (err == ELOOP || err == ENOTDIR) {
                if (::fstatat(current.get(), step.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISLNK(st.st_mode))
                    return symlinkRefused(shown, root);
                return makeError("cannot use " + shown.string() +
                                 " as a folder: a file is in the way; remove it and run again");
            }
            return osError("cannot open the folder", shown, err);
        }
        current = std::move(next);
    }
    return current;
}

Result<Fd> openCacheFile(const fs::path& root, const fs::path& path, int flags, mode_t mode) {
    const std::string leaf = path.filename().string();
    if (leaf.empty() || leaf == "." || leaf == "..")
        return makeError("cannot open " + path.string() + ": it does not name a file");
    auto dir = openCacheDir(root, path.parent_path(), (flags & O_CREAT) != 0);
    if (!dir) return dir.error();
    Fd file(::openat(dir->get(), leaf.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!file) {
        const int err = errno;
        struct stat st {};
        if (err == ELOOP ||
            (::fstatat(dir->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)))
            return symlinkRefused(path, root);
        return osError("cannot open", path, err);
    }
    return file;
}

Result<void> writeCacheFile(const fs::path& root, const fs::path& path, std::string_view content) {
    auto dir = openCacheDir(root, path.parent_path(), true);
    if (!dir) return dir.error();
    return detail::writeFileAtomic(dir->get(), path.filename().string(), content, path,
                                   detail::Mode::Scratch);
}

Result<std::optional<std::string>> readCacheFile(const fs::path& root, const fs::path& path,
                                                 std::uint64_t maxBytes) {
    auto file = openCacheFile(root, path, O_RDONLY | O_NONBLOCK);
    if (!file) {
        std::error_code ec;
        if (!fs::exists(fs::symlink_status(path, ec))) return std::optional<std::string>();
        return file.error();
    }
    struct stat st {};
    if (::fstat(file->get(), &st) != 0) return osError("cannot inspect", path, errno);
    if (!S_ISREG(st.st_mode))
        return makeError("cannot read " + path.string() +
                         ": it is not a regular file; remove it and run again");
    if (static_cast<std::uint64_t>(st.st_size) > maxBytes)
        return makeError("cannot read " + path.string() + ": it holds " + std::to_string(st.st_size) +
                         " bytes, more than the " + std::to_string(maxBytes) +
                         " expected; remove it and run again");
    std::string content(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < content.size()) {
        ssize_t n = ::read(file->get(), content.data() + got, content.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return osError("cannot read", path, errno);
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    content.resize(got);
    return std::optional<std::string>(std::move(content));
}

bool isCacheFileOfSize(const fs::path& root, const fs::path& path, std::uint64_t size) {
    auto dir = openCacheDir(root, path.parent_path(), false);
    if (!dir) return false;
    struct stat st {};
    return ::fstatat(dir->get(), path.filename().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) == size;
}

}  // namespace hfwarm::cache
