// Untrusted names and the paths of one repo's folder in the cache.
//
// File paths, revision names and etags come from a server or a socket client. Every one of them is
// checked here before it becomes part of a path, so a hostile listing cannot make hfwarm write
// outside the repo's folder. RepoLayout only builds paths; creating anything is in write.hpp.
#pragma once

#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/util/result.hpp"

#include <filesystem>
#include <string>
#include <string_view>

namespace hfwarm::cache {

// Longest single path segment and whole repo path accepted (Linux NAME_MAX and PATH_MAX).
inline constexpr std::size_t kMaxSegmentBytes = 255;
inline constexpr std::size_t kMaxPathBytes = 4096;

// Accepts a repo-relative path such as "1_Pooling/config.json": valid UTF-8, segments separated by
// "/". Rejects an empty path, an absolute one, empty, "." and ".." segments, backslashes, NUL and
// other control characters, segments over 255 bytes and paths over 4096 bytes. The error names
// the path (escaped) and the reason.
Result<void> validateRepoPath(std::string_view path);

// A branch or tag name as used under refs/ ("main", "v1.0", "refs/pr/1"): the same rules.
Result<void> validateRevision(std::string_view revision);

// A blob name: 40 (git sha1) or 64 (sha256) lower-case hex digits.
Result<void> validateEtag(std::string_view etag);

// ^[0-9a-f]{40}$, huggingface_hub's REGEX_COMMIT_HASH.
bool isCommitSha(std::string_view revision);

// Printable form of an untrusted name for messages: quoted, control bytes as \xNN.
std::string quoteName(std::string_view name);

// The paths of one repo's folder. Functions taking server-supplied names validate them and return
// an error instead of a path when the name is hostile; a returned path is always inside repoDir()
// (or, for lockFile, inside root()/.locks/<folder>).
class RepoLayout {
  public:
    RepoLayout(std::filesystem::path root, const manifest::RepoRef& repo);

    const std::filesystem::path& root() const { return root_; }
    const std::string& folderName() const { return folderName_; }
    const std::filesystem::path& repoDir() const { return repoDir_; }

    std::filesystem::path blobsDir() const { return repoDir_ / "blobs"; }
    std::filesystem::path snapshotsDir() const { return repoDir_ / "snapshots"; }
    std::filesystem::path refsDir() const { return repoDir_ / "refs"; }
    std::filesystem::path noExistDir() const { return repoDir_ / ".no_exist"; }
    std::filesystem::path treesDir() const { return repoDir_ / "trees"; }
    std::filesystem::path locksDir() const { return root_ / ".locks" / folderName_; }
    std::filesystem::path cachedirTag() const { return root_ / "CACHEDIR.TAG"; }

    Result<std::filesystem::path> blob(std::string_view etag) const;            // blobs/<etag>
    Result<std::filesystem::path> incompleteBlob(std::string_view etag) const;  // blobs/<etag>.incomplete
    Result<std::filesystem::path> lockFile(
        std::string_view etag) const;  // <root>/.locks/<folder>/<etag>.lock
    Result<std::filesystem::path> snapshotDir(std::string_view commit) const;  // snapshots/<commit>
    // snapshots/<commit>/<path>
    Result<std::filesystem::path> snapshotFile(std::string_view commit, std::string_view path) const;
    Result<std::filesystem::path> ref(std::string_view revision) const;  // refs/<revision>
    // .no_exist/<commit>/<path>
    Result<std::filesystem::path> noExist(std::string_view commit, std::string_view path) const;
    Result<std::filesystem::path> tree(std::string_view commit) const;  // trees/<commit>.json

  private:
    std::filesystem::path root_;
    std::string folderName_;
    std::filesystem::path repoDir_;
};

}  // namespace hfwarm::cache
