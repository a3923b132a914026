#include "posix_util.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace hfwarm::cache::detail {

namespace fs = std::filesystem;

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

Result<Fd> openDirUnder(const fs::path& base, const std::vector<std::string>& segments,
                        const fs::path& cacheRoot, bool create) {
    fs::path dir = base;
    for (const std::string& segment : segments) dir /= segment;
    return openCacheDir(cacheRoot, dir, create);
}

Result<void> writeFileAtomic(int dirFd, const std::string& name, std::string_view content,
                             const fs::path& shownPath, Mode mode, int stagingFd) {
    const int tempFd = stagingFd >= 0 ? stagingFd : dirFd;
    const bool durable = mode == Mode::Durable;
    const std::string temp = durable ? ".hfwarm-" + randomHex(16) + ".tmp" : name + ".tmp";
    if (!durable && ::unlinkat(tempFd, temp.c_str(), 0) != 0 && errno != ENOENT)
        return osError("cannot remove the old temporary file next to", shownPath, errno);
    Fd file(::openat(tempFd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
    if (!file) return osError("cannot create a temporary file next to", shownPath, errno);
    auto fail = [&](std::string_view what, int err) -> Result<void> {
        ::unlinkat(tempFd, temp.c_str(), 0);
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
    if (durable && ::fsync(file.get()) != 0) return fail("cannot flush", errno);
    file = Fd();
    if (::renameat(tempFd, temp.c_str(), dirFd, name.c_str()) != 0) return fail("cannot replace", errno);
    // The rename is durable only once the folder is flushed; a failure here loses nothing visible.
    if (durable) ::fsync(dirFd);
    return {};
}

void removeStaleTemps(int dirFd, std::chrono::seconds age) {
    Fd listing(::openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!listing) return;
    DIR* dir = ::fdopendir(listing.get());
    if (dir == nullptr) return;
    listing.release();  // closedir closes it
    const auto now = std::chrono::system_clock::now();
    while (const dirent* item = ::readdir(dir)) {
        const std::string_view name = item->d_name;
        if (!name.starts_with(".hfwarm-") || !name.ends_with(".tmp")) continue;
        struct stat st {};
        if (::fstatat(::dirfd(dir), item->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) continue;
        const auto modified = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
        // Best effort: a leftover that cannot be removed now is tried again on the next warm.
        if (now - modified >= age) ::unlinkat(::dirfd(dir), item->d_name, 0);
    }
    ::closedir(dir);
}

}  // namespace hfwarm::cache::detail
