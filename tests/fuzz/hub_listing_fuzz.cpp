// libFuzzer target: the Hub listing decoders (revision?blobs=true and one page of the recursive
// tree) on arbitrary bodies. A malformed body is an error value, never a crash or an exception, and
// what is accepted has the shapes the cache module relies on.
#include "hfwarm/hub/hub.hpp"
#include "hfwarm/util/hash.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "%s\n", what);
    std::abort();
}

void checkFile(const hfwarm::hub::RepoFile& file) {
    namespace util = hfwarm::util;
    if (!util::isHex(file.blobId, 40)) fail("accepted a file whose blob id is not 40 hex digits");
    if (file.lfs && !util::isHex(file.lfs->sha256, 64))
        fail("accepted an LFS sha256 that is not 64 hex digits");
    if (!file.xetHash.empty() && !util::isHex(file.xetHash, 64))
        fail("accepted a xetHash that is not 64 hex digits");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view body(reinterpret_cast<const char*>(data), size);
    namespace hub = hfwarm::hub;
    hfwarm::manifest::RepoRef repo{hfwarm::manifest::RepoType::Model, "org/name", "main"};

    if (auto listing = hub::parseRevision(body, repo)) {
        if (!hfwarm::util::isHex(listing->commit, 40)) fail("accepted a commit that is not 40 hex digits");
        for (const auto& file : listing->files) checkFile(file);
    } else if (listing.error().message.empty()) {
        fail("a rejected revision listing has no message");
    }
    if (auto files = hub::parseTreePage(body, repo)) {
        for (const auto& file : *files) checkFile(file);
    } else if (files.error().message.empty()) {
        fail("a rejected tree page has no message");
    }
    return 0;
}
