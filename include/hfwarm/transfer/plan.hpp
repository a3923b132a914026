// What an entry fetches: its selections applied to the repo's listing and what the cache holds.
//
// A pure function: the engine lists the repo, asks the cache what it holds of each blob, and acts
// on the plan (marks absent files in .no_exist, downloads the rest). Each selection applies its own
// rule from DESIGN.md section 2; the entry fetches the union.
#pragma once

#include "hfwarm/hub/hub.hpp"
#include "hfwarm/manifest/manifest.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace hfwarm::transfer {

struct PlannedFile {
    std::string path;
    std::string etag;
    std::uint64_t size = 0;
    std::uint64_t onDisk = 0;  // bytes the cache holds already: `size` when the blob is published
};

// A file: path the listing lacks, with the selections that name it.
struct AbsentFile {
    std::string path;
    std::vector<std::string> requiredBy;  // where() of the required selections naming it
    std::vector<std::string> optionalBy;  // where() of the optional ones

    // Fails the entry only when a required selection names it.
    bool required() const { return !requiredBy.empty(); }
};

struct Plan {
    std::vector<PlannedFile> files;    // the union of the selections, in listing order
    std::vector<AbsentFile> absent;    // in order of first mention in the manifest
    std::vector<std::string> refused;  // selected files with a name or etag the cache refuses
    bool listingValid = true;          // every listed path and etag is valid, selected or not
    std::uint64_t bytesTotal = 0;
    std::uint64_t bytesNeeded = 0;  // bytes still to download

    // One message per absent file a required selection names: "file:line: what is missing, where,
    // and what to do", led by the manifest lines so that a narrow status column still shows them.
    std::vector<std::string> failures(const std::string& repo, const std::string& commit) const;

    // One note per absent file only optional selections name: "file:line (optional): ...".
    std::vector<std::string> notes(const std::string& repo, const std::string& commit) const;
};

// How many bytes of the blob `etag` (of `size` bytes) the cache holds: `size` when it is
// published, the length of its partial download, else 0.
using CacheView = std::function<std::uint64_t(const std::string& etag, std::uint64_t size)>;

Plan plan(const manifest::Entry& entry, const hub::Listing& listing, const CacheView& cache);

}  // namespace hfwarm::transfer
