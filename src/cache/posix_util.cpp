#include "posix_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>

namespace hfwarm::cache::detail {

namespace fs = std::filesystem;

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

std::string errnoText(int err) {
    return std::error_code(err, std::generic_category()).message();
}

Error osError(std::string_view what, const fs::path& path, int err) {
    return makeError(std::string(what) + " " + path.string() + ": " + errnoText(err));
}

std::string randomHex(std::size_t n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    thread_local std::mt19937_64 engine{std::random_device{}()};
    std::string out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.push_back(kDigits[engine() & 0xf]);
    return out;
}

std::vector<std::string> splitPath(std::string_view path) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t slash = path.find('/', start);
        if (slash == std::string_view::npos) slash = path.size();
        parts.emplace_back(path.substr(start, slash - start));
        start = slash + 1;
    }
    return parts;
}

namespace {

std::optional<fs::path> realPath(const fs::path& path) {
    std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr), &std::free);
    if (!resolved) return std::nullopt;
    return fs::path(resolved.get());
}

bool isInside(const fs::path& child, const fs::path& parent) {
    auto c = child.begin();
    for (auto p = parent.begin(); p != parent.end(); ++p, ++c) {
        if (p->empty()) continue;  // a trailing separator
        if (c == child.end() || *c != *p) return false;
    }
    return true;
}

}  // namespace

Result<Fd> openDirUnder(const fs::path& base, const std::vector<std::string>& segments,
                        const fs::path& cacheRoot, bool create) {
    if (create) {
        std::error_code ec;
        fs::create_directories(base, ec);
        if (ec) return osError("cannot create the folder", base, ec.value());
    }
    Fd dir(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return osError("cannot open the folder", base, errno);

    fs::path shown = base;
    for (const std::string& segment : segments) {
        shown /= segment;
        Fd next(::openat(dir.get(), segment.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!next && errno == ENOENT && create) {
            if (::mkdirat(dir.get(), segment.c_str(), 0777) != 0 && errno != EEXIST)
                return osError("cannot create the folder", shown, errno);
            next = Fd(::openat(dir.get(), segment.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        }
        if (!next && (errno == ELOOP || errno == ENOTDIR)) {
            struct stat st {};
            if (::fstatat(dir.get(), segment.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
                // A symlinked folder is tolerated only while it stays inside the cache: following one
                // that leads elsewhere would let a crafted cache redirect writes anywhere.
                auto target = realPath(shown);
                auto rootReal = realPath(cacheRoot);
                if (!target || !rootReal || !isInside(*target, *rootReal))
                    return makeError("refusing to write through " + shown.string() +
                                     ": it is a symlink leading out of the cache " + cacheRoot.string() +
                                     "; remove it and run again");
                next = Fd(::open(target->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            } else {
                return makeError("cannot use " + shown.string() +
                                 " as a folder: a file is in the way; remove it and run again");
            }
        }
        if (!next) return osError("cannot open the folder", shown, errno);
        dir = std::move(next);
    }
    return dir;
}

Result<void> writeFileAtomic(int dirFd, const std::string& name, std::string_view content,
                             const fs::path& shownPath) {
    const std::string temp = ".hfwarm-" + randomHex(16) + ".tmp";
    Fd file(::openat(dirFd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
    if (!file) return osError("cannot create a temporary file next to", shownPath, errno);
    auto fail = [&](std::string_view what, int err) -> Result<void> {
        ::unlinkat(dirFd, temp.c_str(), 0);
        return osError(what, shownPath, err);
    };
    std::size_t written = 0;
    while (written < content.size()) {
        ssize_t n = ::write(file.get(), content.data() + written, content.size() - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("cannot write", errno);
        }
        written += static_cast<std::size_t>(n);
    }
    if (::fsync(file.get()) != 0) return fail("cannot flush", errno);
    file = Fd();
    if (::renameat(dirFd, temp.c_str(), dirFd, name.c_str()) != 0) return fail("cannot replace", errno);
    // The rename is durable only once the folder is flushed; a failure here loses nothing visible.
    ::fsync(dirFd);
    return {};
}

}  // namespace hfwarm::cache::detail
