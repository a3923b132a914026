// trees/<commit>.json: the listing of a commit that huggingface_hub (v1.22+) reads offline.
//
// huggingface_hub trusts this file: its offline snapshot_download reports a snapshot incomplete
// when a listed file is missing, and it may skip a HEAD request from it. Write it only with the
// complete, exact listing of the commit.
#pragma once

#include "hfwarm/cache/paths.hpp"
#include "hfwarm/util/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hfwarm::cache {

struct TreeFile {
    std::string path;                      // repo-relative path
    std::uint64_t size = 0;                // file size in bytes
    std::string blobId;                    // git blob sha1 ("oid" in the tree API)
    std::optional<std::string> lfsSha256;  // LFS files: sha256 of the content
    std::optional<std::uint64_t> lfsSize;  // LFS files: size (written whenever lfsSha256 is)
    std::optional<std::string> xetHash;    // Xet-backed files: 64-hex Xet file id

    friend bool operator==(const TreeFile&, const TreeFile&) = default;
};

// The exact text _tree_cache.write_tree_cache produces: json.dump(indent=1) with ASCII escapes,
// "format_version" then "files", paths sorted, keys in huggingface_hub's order, no final newline.
std::string treeJson(std::vector<TreeFile> files);

// Writes trees/<commit>.json atomically. Every path is validated and every xetHash must be 64 hex
// (huggingface_hub ignores the whole file otherwise).
Result<void> writeTree(const RepoLayout& layout, std::string_view commit, const std::vector<TreeFile>& files);

// Reads trees/<commit>.json: nullopt when absent; an error when it exists but is not a valid
// format_version 1 listing (huggingface_hub then ignores it).
Result<std::optional<std::vector<TreeFile>>> readTree(const RepoLayout& layout, std::string_view commit);

}  // namespace hfwarm::cache
