#include "hfwarm/cache/write.hpp"

#include "hfwarm/util/hash.hpp"
#include "hfwarm/util/units.hpp"
#include "posix_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <system_error>
#include <vector>

namespace hfwarm::cache {

namespace fs = std::filesystem;
using detail::osError;

namespace {

// Splits a validated repo path into its folders and its file name.
std::pair<std::vector<std::string>, std::string> splitParent(std::string_view path) {
    std::vector<std::string> parts = detail::splitPath(path);
    std::string leaf = std::move(parts.back());
    parts.pop_back();
    return {std::move(parts), std::move(leaf)};
}

std::optional<std::string> readLinkAt(int dirFd, const std::string& name) {
    std::vector<char> buffer(4096 + 1);
    ssize_t n = ::readlinkat(dirFd, name.c_str(), buffer.data(), buffer.size());
    if (n < 0 || static_cast<std::size_t>(n) >= buffer.size()) return std::nullopt;
    return std::string(buffer.data(), static_cast<std::size_t>(n));
}

}  // namespace

Result<void> prepareRepo(const RepoLayout& layout) {
    for (const char* folder : {"blobs", "snapshots", "refs"}) {
        auto dir = detail::openDirUnder(layout.repoDir(), {folder}, layout.root(), true);
        if (!dir) return dir.error();
    }
    auto locks = openCacheDir(layout.root(), layout.locksDir(), true);
    if (!locks) return locks.error();
    auto repo = openCacheDir(layout.root(), layout.repoDir(), false);
    if (!repo) return repo.error();
    // Refs and snapshot links are staged in the repo folder, where no client lists files; a writer
    // killed mid-way leaves its temp name there, cleared once no live writer can own it.
    detail::removeStaleTemps(repo->get(), std::chrono::minutes(10));
    return {};
}

namespace {

// The temp file is gone: another process published the blob, or `hf cache prune` removed the file
// (it deletes *.incomplete without looking at locks).
Result<PublishOutcome> vanished(int dirFd, const fs::path& incompletePath, const fs::path& blobPath) {
    struct stat st {};
    if (::fstatat(dirFd, blobPath.filename().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
        return PublishOutcome::AlreadyPresent;
    return makeError("the partial download " + incompletePath.string() +
                     " disappeared before it could be published (was `hf cache prune` run?); "
                     "the file will be downloaded again");
}

}  // namespace

Result<PublishOutcome> publishBlob(const fs::path& root, const fs::path& incompletePath,
                                   const fs::path& blobPath) {
    if (incompletePath.parent_path() != blobPath.parent_path())
        return makeError("cannot publish " + incompletePath.string() + " as " + blobPath.string() +
                         ": they are not in the same folder");
    auto dir = openCacheDir(root, blobPath.parent_path(), false);
    if (!dir) return dir.error();
    const std::string tempName = incompletePath.filename().string();
    Fd temp(::openat(dir->get(), tempName.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!temp) {
        int err = errno;
        if (err == ENOENT) return vanished(dir->get(), incompletePath, blobPath);
        return osError("cannot open the downloaded file", incompletePath, err);
    }
    struct stat st {};
    if (::fstat(temp.get(), &st) != 0 || !S_ISREG(st.st_mode))
        return makeError("cannot publish " + incompletePath.string() + ": it is not a regular file");
    if (::fsync(temp.get()) != 0) return osError("cannot flush the downloaded file", incompletePath, errno);
    temp = Fd();
    // renameat replaces whatever has the blob's name, a planted symlink included, never its target.
    if (::renameat(dir->get(), tempName.c_str(), dir->get(), blobPath.filename().c_str()) != 0) {
        int err = errno;
        if (err == ENOENT) return vanished(dir->get(), incompletePath, blobPath);
        return makeError("cannot rename " + incompletePath.string() + " to " + blobPath.string() + ": " +
                         detail::errnoText(err));
    }
    if (::fsync(dir->get()) != 0) return osError("cannot flush the folder", blobPath.parent_path(), errno);
    return PublishOutcome::Published;
}

std::string snapshotLinkTarget(std::string_view path, std::string_view etag) {
    std::string target;
    std::size_t depth = 0;
    for (char c : path)
        if (c == '/') ++depth;
    for (std::size_t i = 0; i < depth + 2; ++i) target += "../";
    target += "blobs/";
    target += etag;
    return target;
}

Result<void> linkSnapshot(const RepoLayout& layout, std::string_view commit, std::string_view path,
                          std::string_view etag) {
    auto pointer = layout.snapshotFile(commit, path);
    if (!pointer) return pointer.error();
    if (auto ok = validateEtag(etag); !ok) return ok.error();

    auto [folders, leaf] = splitParent(path);
    folders.insert(folders.begin(), {"snapshots", std::string(commit)});
    auto dir = detail::openDirUnder(layout.repoDir(), folders, layout.root(), true);
    if (!dir) return dir.error();
    const int dirFd = dir->get();
    const std::string target = snapshotLinkTarget(path, etag);

    struct stat st {};
    if (::fstatat(dirFd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode) && readLinkAt(dirFd, leaf) == target) return {};
        if (S_ISDIR(st.st_mode))
            return makeError("cannot place " + pointer->string() +
                             ": a folder of that name is in the way; remove it and run again");
    } else if (errno == ENOENT) {
        if (::symlinkat(target.c_str(), dirFd, leaf.c_str()) == 0) return {};
        // Another process may have created the same pointer in the meantime.
        if (errno == EEXIST && readLinkAt(dirFd, leaf) == target) return {};
        if (errno != EEXIST) return osError("cannot create the symlink", *pointer, errno);
    } else {
        return osError("cannot inspect", *pointer, errno);
    }
    // Replace through a temp link and rename, so a reader never sees the pointer missing. The temp
    // link is made in the repo folder, so a kill before the rename leaves nothing in the snapshot.
    auto staging = openCacheDir(layout.root(), layout.repoDir(), false);
    if (!staging) return staging.error();
    const std::string temp = ".hfwarm-" + detail::randomHex(16) + ".tmp";
    if (::symlinkat(target.c_str(), staging->get(), temp.c_str()) != 0)
        return osError("cannot create a symlink next to", *pointer, errno);
    if (::renameat(staging->get(), temp.c_str(), dirFd, leaf.c_str()) != 0) {
        int err = errno;
        ::unlinkat(staging->get(), temp.c_str(), 0);
        return osError("cannot replace the symlink", *pointer, err);
    }
    return {};
}

Result<void> writeRef(const RepoLayout& layout, std::string_view revision, std::string_view commit) {
    auto refPath = layout.ref(revision);
    if (!refPath) return refPath.error();
    if (!isCommitSha(commit))
        return makeError("refusing to write " + refPath->string() + ": " + quoteName(commit) +
                         " is not a 40-hex commit");
    auto [folders, leaf] = splitParent(revision);
    folders.insert(folders.begin(), "refs");
    auto dir = detail::openDirUnder(layout.repoDir(), folders, layout.root(), true);
    if (!dir) return dir.error();
    // Staged in the repo folder: clients list every file under refs/ as a revision.
    auto staging = openCacheDir(layout.root(), layout.repoDir(), false);
    if (!staging) return staging.error();
    return detail::writeFileAtomic(dir->get(), leaf, commit, *refPath, detail::Mode::Durable, staging->get());
}

Result<void> markNoExist(const RepoLayout& layout, std::string_view commit, std::string_view path) {
    auto marker = layout.noExist(commit, path);
    if (!marker) return marker.error();
    auto [folders, leaf] = splitParent(path);
    folders.insert(folders.begin(), {".no_exist", std::string(commit)});
    auto dir = detail::openDirUnder(layout.repoDir(), folders, layout.root(), true);
    if (!dir) return dir.error();
    Fd file(::openat(dir->get(), leaf.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666));
    if (!file) return osError("cannot create the marker", *marker, errno);
    return {};
}

Result<void> writeCachedirTag(const fs::path& root) {
    const fs::path tag = root / "CACHEDIR.TAG";
    struct stat st {};
    if (::lstat(tag.c_str(), &st) == 0) return {};
    std::error_code ec;
    fs::create_directories(root, ec);
    if (ec) return osError("cannot create the cache folder", root, ec.value());
    Fd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return osError("cannot open the cache folder", root, errno);
    return detail::writeFileAtomic(dir.get(), "CACHEDIR.TAG", kCachedirTagContent, tag);
}

Result<std::uint64_t> freeSpace(const fs::path& path) {
    std::error_code ec;
    fs::path probe = fs::absolute(path, ec);
    if (ec) probe = path;
    struct statvfs info {};
    while (::statvfs(probe.c_str(), &info) != 0) {
        if (errno != ENOENT || !probe.has_relative_path())
            return osError("cannot query free space of", path, errno);
        probe = probe.parent_path();
    }
    return static_cast<std::uint64_t>(info.f_bavail) * static_cast<std::uint64_t>(info.f_frsize);
}

Result<void> checkFreeSpace(const fs::path& path, std::uint64_t bytesNeeded) {
    auto available = freeSpace(path);
    if (!available) return available.error();
    if (*available >= bytesNeeded) return {};
    return makeError("not enough free space for " + path.string() + ": " + std::to_string(bytesNeeded) +
                     " bytes (" + util::humanBytes(bytesNeeded) + ") needed, " + std::to_string(*available) +
                     " bytes (" + util::humanBytes(*available) +
                     ") available; free some space or choose another --cache-dir");
}

Result<void> verifyBlob(const fs::path& path, std::string_view etag,
                        std::optional<std::uint64_t> expectedSize) {
    const bool sha256 = util::isHex(etag, 64);
    if (!sha256 && !util::isHex(etag, 40))
        return makeError("cannot verify " + path.string() + ": the etag " + quoteName(etag) +
                         " is neither a sha256 nor a git sha1");
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return osError("cannot read", path, errno);
    if (!S_ISREG(st.st_mode))
        return makeError(path.string() + " is not a blob: it is " +
                         (S_ISLNK(st.st_mode) ? "a symlink" : "not a regular file") +
                         "; remove it and warm the repo again to download the real file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (expectedSize && size != *expectedSize)
        return makeError(path.string() + " has " + std::to_string(size) + " bytes, the Hub lists " +
                         std::to_string(*expectedSize));
    std::string actual;
    try {
        actual = util::hashFileHex(path, sha256 ? util::HashKind::Sha256 : util::HashKind::Sha1, !sha256);
    } catch (const std::system_error& e) {
        return makeError("cannot hash " + path.string() + ": " + e.what());
    }
    if (actual != etag)
        return makeError(path.string() + " is corrupt: its " + (sha256 ? "sha256" : "git blob sha1") +
                         " is " + actual + ", expected " + std::string(etag));
    return {};
}

}  // namespace hfwarm::cache
