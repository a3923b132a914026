#include "hfwarm/cache/maintenance.hpp"

#include "hfwarm/cache/lock.hpp"
#include "hfwarm/cache/paths.hpp"
#include "hfwarm/cache/scan.hpp"
#include "hfwarm/cache/write.hpp"

#include <optional>
#include <set>
#include <system_error>
#include <utility>

namespace hfwarm::cache {

std::vector<VerifyJob> verifyJobs(const manifest::Manifest& manifest, const std::filesystem::path& root) {
    std::vector<VerifyJob> jobs;
    for (const auto& entry : manifest.entries) {
        auto scan = scanEntry(root, entry);
        if (!scan.commit) continue;
        jobs.push_back({entry.repo.display(), scan.repoDir / "snapshots" / *scan.commit});
    }
    return jobs;
}

VerifyReport verifySnapshots(const std::vector<VerifyJob>& jobs) {
    VerifyReport out;
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
            if (auto checked = verifyBlob(blob, blob.filename().string()); !checked)
                out.problems.push_back({job.repo, relative, checked.error().message});
        }
    }
    return out;
}

PruneReport prune(const manifest::Manifest& manifest, const std::filesystem::path& root, bool apply) {
    PruneReport result;
    result.applied = apply;
    std::set<std::string> seen;
    for (const auto& entry : manifest.entries) {
        auto scan = scanEntry(root, entry);
        RepoLayout layout(root, entry.repo);
        for (const auto& problem : scan.problems) {
            std::string reason;
            if (problem.kind == ProblemKind::OrphanBlob)
                reason = "blob no snapshot uses";
            else if (problem.kind == ProblemKind::IncompleteLeftover)
                reason = "stale partial download";
            else
                continue;
            if (!seen.insert(problem.path.string()).second) continue;
            // A partial download in progress (here or in another process) holds its lock; a stale
            // one's lock is held here until the file is gone, so that no download starts on it
            // meanwhile.
            std::optional<BlobLock> held;
            if (problem.kind == ProblemKind::IncompleteLeftover) {
                auto name = problem.path.filename().string();
                auto etag = name.substr(0, name.find('.'));
                if (auto lockPath = layout.lockFile(etag)) {
                    auto lock = BlobLock::tryAcquire(root, *lockPath);
                    if (!lock || !*lock) continue;
                    held = std::move(**lock);
                }
            }
            std::error_code ec;
            auto bytes = std::filesystem::file_size(problem.path, ec);
            PruneItem item{problem.path, ec ? 0 : bytes, std::move(reason)};
            if (apply && !std::filesystem::remove(problem.path, ec)) continue;
            result.bytes += item.bytes;
            result.items.push_back(std::move(item));
        }
    }
    return result;
}

}  // namespace hfwarm::cache
