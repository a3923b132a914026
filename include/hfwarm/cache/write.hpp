// The write side of the cache: small synchronous steps the download engine calls once the bytes
// are on disk (the engine does the network I/O and the hashing).
//
// Every step is atomic for readers (temp file + rename, or a single symlink/rename), never follows
// a symlink out of the cache, and returns an error value that names the path and what to do
// instead of throwing. None of these functions blocks for long except verifyBlob, which hashes a
// whole file: run it off the event loop.
#pragma once

#include "hfwarm/cache/paths.hpp"
#include "hfwarm/cache/safe_io.hpp"
#include "hfwarm/util/result.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace hfwarm::cache {

// Creates the root, the repo folder with blobs/, snapshots/ and refs/, and <root>/.locks/<folder>/.
// Fails, naming it, when any of these folders (the repo folder and .locks included) is a symlink.
Result<void> prepareRepo(const RepoLayout& layout);

enum class PublishOutcome {
    Published,       // the temp file was flushed and renamed to the blob
    AlreadyPresent,  // the temp file was gone but the blob exists: another process published it
};

// fsync(temp), rename(temp, blob), fsync(blob's folder), both in the same folder under `root`, reached
// without following a symlink. An existing blob is replaced (it has the same name, so the same
// content once verified); so is a symlink planted under the blob's name. A temp file removed under us (`hf
// cache prune` deletes *.incomplete without looking at locks) is an error unless the blob already exists.
Result<PublishOutcome> publishBlob(const std::filesystem::path& root,
                                   const std::filesystem::path& incompletePath,
                                   const std::filesystem::path& blobPath);

// The relative target of snapshots/<commit>/<path>: "../" x (depth + 2) + "blobs/<etag>".
std::string snapshotLinkTarget(std::string_view path, std::string_view etag);

// Creates snapshots/<commit>/<path> as a relative symlink to blobs/<etag>, creating folders on the
// way. An existing pointer is replaced atomically; an identical one is left alone.
Result<void> linkSnapshot(const RepoLayout& layout, std::string_view commit, std::string_view path,
                          std::string_view etag);

// Writes refs/<revision> holding exactly the 40-hex `commit`, no newline, atomically (temp +
// rename). A revision with "/" ("refs/pr/1") becomes nested folders.
Result<void> writeRef(const RepoLayout& layout, std::string_view revision, std::string_view commit);

// Creates the empty marker .no_exist/<commit>/<path> for a file the Hub says does not exist.
Result<void> markNoExist(const RepoLayout& layout, std::string_view commit, std::string_view path);

// huggingface_hub's CACHEDIR_TAG_CONTENT, byte for byte.
inline constexpr std::string_view kCachedirTagContent =
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by huggingface_hub.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/\n";

// Writes <root>/CACHEDIR.TAG unless it exists (huggingface_hub never rewrites it either).
Result<void> writeCachedirTag(const std::filesystem::path& root);

// Bytes available to this user on the file system holding `path` (or its nearest existing parent).
Result<std::uint64_t> freeSpace(const std::filesystem::path& path);

// Succeeds when `bytesNeeded` fit on the file system of `path`; else an error naming the path, the
// bytes needed and the bytes available.
Result<void> checkFreeSpace(const std::filesystem::path& path, std::uint64_t bytesNeeded);

// Checks a blob against its name: sha256 for a 64-hex etag (LFS/Xet), the git blob sha1 for a
// 40-hex one, and the size first when `expectedSize` is given. The error says what differed. A blob
// that is a symlink is an error whatever it points to.
Result<void> verifyBlob(const std::filesystem::path& path, std::string_view etag,
                        std::optional<std::uint64_t> expectedSize = std::nullopt);

}  // namespace hfwarm::cache
