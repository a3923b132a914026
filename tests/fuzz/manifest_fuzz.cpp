// libFuzzer target: manifest::parse and parseRepoRef on arbitrary text. Besides "no crash", a
// manifest that parses must normalize to text that parses again to the same normal form, since
// `hfwarmctl cache-key` relies on that form being stable.
#include "hfwarm/manifest/manifest.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    namespace manifest = hfwarm::manifest;

    auto ref = manifest::parseRepoRef(text);
    if (ref) (void)ref->display();

    auto parsed = manifest::parse(text, "fuzz.txt");
    for (const auto& diagnostic : parsed.errors) (void)diagnostic.format();
    if (!parsed.ok()) return 0;

    for (const auto& entry : parsed.manifest.entries) {
        (void)entry.repo.display();
        (void)entry.selects("config.json");
        (void)entry.selects("sub/dir/model.safetensors");
    }
    auto normal = manifest::normalize(parsed.manifest);
    auto reparsed = manifest::parse(normal, "normalized.txt");
    if (!reparsed.ok()) {
        std::fprintf(stderr, "normalized manifest does not parse:\n%s\nfirst error: %s\n", normal.c_str(),
                     reparsed.errors.front().format().c_str());
        std::abort();
    }
    if (manifest::normalize(reparsed.manifest) != normal) {
        std::fprintf(stderr, "normalize is not stable:\n%s\n", normal.c_str());
        std::abort();
    }
    (void)manifest::cacheKey(parsed.manifest);
    return 0;
}
