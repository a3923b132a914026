#include "hfwarm/transfer/plan.hpp"

#include "hfwarm/cache/paths.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace hfwarm::transfer {

namespace {

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

std::string absentText(const AbsentFile& file, const std::string& repo, const std::string& commit) {
    return file.path + " does not exist in " + repo + " at commit " + commit.substr(0, 12) +
           " (recorded in .no_exist)";
}

}  // namespace

Plan plan(const manifest::Entry& entry, const hub::Listing& listing, const CacheView& cache) {
    Plan out;
    std::unordered_set<std::string_view> listed;
    listed.reserve(listing.files.size());
    for (const auto& file : listing.files) {
        listed.insert(file.path);
        auto validPath = cache::validateRepoPath(file.path);
        auto validEtag = cache::validateEtag(file.etag());
        if (!validPath || !validEtag) out.listingValid = false;
        if (!entry.selects(file.path)) continue;
        if (!validPath) {
            out.refused.push_back("refused a file name from the server: " + validPath.error().message);
            continue;
        }
        if (!validEtag) {
            out.refused.push_back("refused " + file.path + ": " + validEtag.error().message);
            continue;
        }
        const std::uint64_t onDisk = std::min(cache ? cache(file.etag(), file.size) : 0, file.size);
        out.files.push_back({file.path, file.etag(), file.size, onDisk});
        out.bytesTotal += file.size;
        out.bytesNeeded += file.size - onDisk;
    }

    // A file: path a selection's own exclude: removes is not asked for by that selection.
    std::unordered_map<std::string, std::size_t> absentIndex;
    for (const auto& selection : entry.selections) {
        for (const auto& path : selection.files) {
            if (listed.count(path) != 0 || !selection.selects(path)) continue;
            auto [it, inserted] = absentIndex.emplace(path, out.absent.size());
            if (inserted) out.absent.push_back({path, {}, {}});
            auto& file = out.absent[it->second];
            (selection.optional ? file.optionalBy : file.requiredBy).push_back(selection.where());
        }
    }
    return out;
}

std::vector<std::string> Plan::failures(const std::string& repo, const std::string& commit) const {
    std::vector<std::string> out;
    for (const auto& file : absent)
        if (file.required())
            out.push_back(joined(file.requiredBy) + ": " + absentText(file, repo, commit) +
                          "; check the file name on that line, or mark the line optional");
    return out;
}

std::vector<std::string> Plan::notes(const std::string& repo, const std::string& commit) const {
    std::vector<std::string> out;
    for (const auto& file : absent)
        if (!file.required())
            out.push_back(joined(file.optionalBy) + " (optional): " + absentText(file, repo, commit));
    return out;
}

}  // namespace hfwarm::transfer
