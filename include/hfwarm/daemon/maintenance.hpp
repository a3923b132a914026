// The `verify` and `prune` methods' work on the repos of the manifests.
#pragma once

#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/protocol/messages.hpp"
#include "hfwarm/util/aliases.hpp"

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace hfwarm::daemon {

struct VerifyJob {
    std::string repo;
    std::filesystem::path snapshot;
};

// The snapshot of each entry's resolved commit, for verifySnapshots.
std::vector<VerifyJob> verifyJobs(const manifest::Manifest& manifest, const std::filesystem::path& root);

// Hashes the blob behind every pointer of each snapshot. Run it on a pool: it reads whole files.
net::awaitable<protocol::VerifyResult> verifySnapshots(std::vector<VerifyJob> jobs);

// Leftovers of interrupted downloads nobody holds a lock on, and blobs no snapshot uses, in the
// repos of the manifests; removed with `apply`, else only listed.
protocol::PruneResult prune(const manifest::Manifest& manifest, const std::filesystem::path& root,
                            bool apply);

}  // namespace hfwarm::daemon
