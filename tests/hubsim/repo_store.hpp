// The repositories of a fixture folder, indexed once at start: file sizes, git blob ids, LFS
// sha256s, deterministic commit shas, and the settings of each repo's `.hubsim.json`.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::hubsim {

enum class RepoType { Model, Dataset };

struct FileEntry {
    std::string path;  // repo-relative, '/'-separated
    std::filesystem::path diskPath;
    std::uint64_t size = 0;
    std::string blobId;  // git blob sha1 of the content, or of the LFS pointer for an LFS file
    std::string sha256;  // LFS files only
    std::uint64_t pointerSize = 0;

    bool lfs() const { return !sha256.empty(); }
};

// One item of a tree listing: a file, or a directory (file == nullptr).
struct TreeItem {
    std::string path;
    std::string oid;
    const FileEntry* file = nullptr;
};

// The files of one revision (a branch, a tag, or a commit).
struct Tree {
    std::string commit;
    std::vector<FileEntry> files;                // sorted by path
    std::map<std::string, std::string> dirOids;  // every directory below the root -> tree oid

    const FileEntry* file(std::string_view path) const;
    bool hasDirectory(std::string_view path) const {
        return path.empty() || dirOids.contains(std::string(path));
    }
    // Entries below `dir` ("" = root): direct children, or every descendant when `recursive`.
    std::vector<TreeItem> list(std::string_view dir, bool recursive) const;
    std::uint64_t totalSize() const;
};

struct Repo {
    RepoType type = RepoType::Model;
    std::string id;  // "owner/name", or "name" for a legacy model id
    std::filesystem::path dir;
    bool gated = false;
    std::optional<std::string> renamedTo;
    std::map<std::string, std::shared_ptr<const Tree>, std::less<>> refs;  // "main", branches, tags

    // A ref name or a full 40-hex commit of one of the repo's trees; nullptr if none matches.
    const Tree* resolve(std::string_view revision) const;
};

class RepoStore {
  public:
    // Scans `fixtures` (layout in tests/hubsim/README.md) and hashes every file, on all cores, but
    // the LFS files whose sha256 a repo's settings give (`lfs_sha256`).
    // Throws std::runtime_error naming the file or setting at fault.
    static RepoStore load(const std::filesystem::path& fixtures, std::uint64_t lfsThreshold);

    const Repo* find(RepoType type, std::string_view id) const;
    // A repo whose id differs only in letter case (the Hub redirects those).
    const Repo* findIgnoringCase(RepoType type, std::string_view id) const;
    // The LFS file whose content has this sha256, in any repo.
    const FileEntry* lfsBlob(std::string_view sha256) const;

    std::size_t repoCount() const { return repos_.size(); }

  private:
    std::vector<std::unique_ptr<Repo>> repos_;
    std::map<std::string, const Repo*, std::less<>> byKey_;       // "model:owner/name"
    std::map<std::string, const Repo*, std::less<>> byLowerKey_;  // the same, lower case
    std::map<std::string, const FileEntry*, std::less<>> lfsBlobs_;
};

// JSON shapes of the Hub API.
// A tree or paths-info entry; `expand` adds lastCommit and securityFileStatus.
nlohmann::json treeItemJson(const TreeItem& item, const Tree& tree, bool expand);
// GET /api/{type}s/{id}/revision/{rev}; `blobs` adds size, blobId and lfs to each sibling.
nlohmann::json repoInfoJson(const Repo& repo, const Tree& tree, bool blobs);
// File names a careless client would write outside its folder: `../x`, `/abs`, `a/../../b`,
// backslashes, NUL and control characters. Tree entries, or siblings when `asSiblings`.
nlohmann::json hostileEntriesJson(bool asSiblings);

}  // namespace hfwarm::hubsim
