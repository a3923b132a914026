#include "hfwarm/daemon/maintenance.hpp"

#include <utility>

namespace hfwarm::daemon {

net::awaitable<protocol::VerifyResult> verifyResult(std::vector<cache::VerifyJob> jobs) {
    auto report = cache::verifySnapshots(jobs);
    protocol::VerifyResult out;
    out.filesChecked = report.filesChecked;
    out.bytesChecked = report.bytesChecked;
    for (auto& p : report.problems)
        out.problems.push_back({std::move(p.repo), std::move(p.path), std::move(p.problem)});
    co_return out;
}

protocol::PruneResult pruneResult(const manifest::Manifest& manifest, const std::filesystem::path& root,
                                  bool apply) {
    auto report = cache::prune(manifest, root, apply);
    protocol::PruneResult out;
    out.applied = report.applied;
    out.bytes = report.bytes;
    for (auto& item : report.items)
        out.items.push_back({item.path.string(), item.bytes, std::move(item.reason)});
    return out;
}

}  // namespace hfwarm::daemon
