#include "hfwarm/daemon/maintenance.hpp"

#include "hfwarm/cache/lock.hpp"
#include "hfwarm/cache/paths.hpp"
#include "hfwarm/cache/scan.hpp"
#include "hfwarm/cache/write.hpp"

#include <set>

namespace hfwarm::daemon {

std::vector<VerifyJob> verifyJobs(const manifest::Manifest& manifest, const std::filesystem::path& root) {
    std::vector<VerifyJob> jobs;
    for (const auto& entry : manifest.entries) {
        auto scan = cache::scanEntry(root, entry);
        if (!scan.commit) continue;
        jobs.push_back({entry.repo.display(), scan.repoDir / "snapshots" / *scan.commit});
    }
    return jobs;
}

// Hashes the blob behind every pointer of each snapshot. Runs on the pool: it reads whole files.
net::awaitable<protocol::VerifyResult> verifySnapshots(std::vector<VerifyJob> jobs) {
    protocol::VerifyResult out;
    for (const auto& job : jobs) {
        std::error_code ec;
        for (auto it = std::filesystem::recursive_directory_iterator(job.snapshot, ec);
             !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
            if (!it->is_symlink()) continue;
            auto relative = it->path().lexically_relative(job.snapshot).generic_string();
            std::error_code linkError;
            auto target = std::filesystem::read_symlink(it->path(), linkError);
            if (linkError) {
                out.problems.push_back({job.repo, relative, "cannot read the link: " + linkError.message()});
                continue;
            }
            auto blob = (it->path().parent_path() / target).lexically_normal();
            std::error_code sizeError;
            auto size = std::filesystem::file_size(blob, sizeError);
            out.filesChecked += 1;
            if (!sizeError) out.bytesChecked += size;
            if (auto checked = cache::verifyBlob(blob, blob.filename().string()); !checked)
                out.problems.push_back({job.repo, relative, checked.error().message});
        }
    }
    co_return out;
}

// Leftovers of interrupted downloads nobody holds a lock on, and blobs no snapshot uses, in the
// repos of the manifests. Other repos of the cache belong to whoever put them there.
protocol::PruneResult prune(const manifest::Manifest& manifest, const std::filesystem::path& root,
                            bool apply) {
    protocol::PruneResult result;
    result.applied = apply;
    std::set<std::string> seen;
    for (const auto& entry : manifest.entries) {
        auto scan = cache::scanEntry(root, entry);
        cache::RepoLayout layout(root, entry.repo);
        for (const auto& problem : scan.problems) {
            std::string reason;
            if (problem.kind == cache::ProblemKind::OrphanBlob)
                reason = "blob no snapshot uses";
            else if (problem.kind == cache::ProblemKind::IncompleteLeftover)
                reason = "stale partial download";
            else
                continue;
            if (!seen.insert(problem.path.string()).second) continue;
            if (problem.kind == cache::ProblemKind::IncompleteLeftover) {
                // A partial download in progress (here or in another process) holds its lock.
                auto name = problem.path.filename().string();
                auto etag = name.substr(0, name.find('.'));
                if (auto lockPath = layout.lockFile(etag)) {
                    auto lock = cache::BlobLock::tryAcquire(root, *lockPath);
                    if (!lock || !*lock) continue;
                }
            }
            std::error_code ec;
            auto bytes = std::filesystem::file_size(problem.path, ec);
            protocol::PruneItem item{problem.path.string(), ec ? 0 : bytes, reason};
            if (apply && !std::filesystem::remove(problem.path, ec)) continue;
            result.bytes += item.bytes;
            result.items.push_back(std::move(item));
        }
    }
    return result;
}

}  // namespace hfwarm::daemon
