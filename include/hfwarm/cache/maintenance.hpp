// Verify and prune over the repos of a manifest: whether every blob a snapshot points to still
// hashes to its name, and what interrupted downloads and replaced revisions left behind. Both stay
// inside the repo folders of the manifest's entries: other repos of the cache belong to whoever put
// them there.
#pragma once

#include "hfwarm/manifest/manifest.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace hfwarm::cache {

// The snapshot of one entry's resolved commit.
struct VerifyJob {
    std::string repo;  // as shown to a person: RepoRef::display()
    std::filesystem::path snapshot;
};

struct VerifyProblem {
    std::string repo;
    std::string path;     // inside the snapshot, with forward slashes
    std::string problem;  // what is wrong with the pointer or its blob
};

struct VerifyReport {
    std::uint64_t filesChecked = 0;
    std::uint64_t bytesChecked = 0;
    std::vector<VerifyProblem> problems;
};

struct PruneItem {
    std::filesystem::path path;
    std::uint64_t bytes = 0;
    std::string reason;  // "blob no snapshot uses" or "stale partial download"
};

struct PruneReport {
    bool applied = false;  // the items were removed, not only listed
    std::vector<PruneItem> items;
    std::uint64_t bytes = 0;
};

// The snapshot of each entry whose commit the cache knows; entries not in the cache are left out.
std::vector<VerifyJob> verifyJobs(const manifest::Manifest& manifest, const std::filesystem::path& root);

// Hashes the blob behind every pointer of each snapshot. It reads whole files: run it off the
// io_context's thread. Unreadable links and blobs that do not match their name are problems, not
// errors.
VerifyReport verifySnapshots(const std::vector<VerifyJob>& jobs);

// Partial downloads nobody holds a lock on, and blobs no snapshot uses, in the repos of the
// manifest's entries; removed with `apply`, else only listed. A file that cannot be removed is left
// out of the report.
PruneReport prune(const manifest::Manifest& manifest, const std::filesystem::path& root, bool apply);

}  // namespace hfwarm::cache
