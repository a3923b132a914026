// The `verify` and `prune` methods: the cache's checks over the repos of the manifests
// (cache/maintenance.hpp), answered as protocol results.
#pragma once

#include "hfwarm/cache/maintenance.hpp"
#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/protocol/messages.hpp"
#include "hfwarm/util/aliases.hpp"

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <vector>

namespace hfwarm::daemon {

// Hashes the blob behind every pointer of each snapshot (cache::verifyJobs). Run it on a pool: it
// reads whole files.
net::awaitable<protocol::VerifyResult> verifyResult(std::vector<cache::VerifyJob> jobs);

// cache::prune: removed with `apply`, else only listed.
protocol::PruneResult pruneResult(const manifest::Manifest& manifest, const std::filesystem::path& root,
                                  bool apply);

}  // namespace hfwarm::daemon
