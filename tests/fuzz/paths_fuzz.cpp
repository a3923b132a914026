// libFuzzer target: the cache's path validator. The input is three lines: a repo reference, a
// commit or revision, and a repo path (the rest, newlines included). Whatever is accepted must map
// inside the repo's folder, and the repo's folder must be one plain name inside the cache root.
#include "hfwarm/cache/paths.hpp"
#include "hfwarm/manifest/manifest.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const char* what, const fs::path& path) {
    std::fprintf(stderr, "%s: %s\n", what, path.c_str());
    std::abort();
}

// True when `path`, normalized, lies strictly below `dir`, compared component by component so that
// "/c/models--a" does not count as inside "/c/models--a--b".
bool strictlyInside(const fs::path& path, const fs::path& dir) {
    auto normal = path.lexically_normal();
    auto base = dir.lexically_normal();
    auto p = normal.begin();
    for (auto d = base.begin(); d != base.end(); ++d, ++p) {
        if (d->empty()) continue;
        if (p == normal.end() || *p != *d) return false;
    }
    for (; p != normal.end(); ++p)
        if (!p->empty()) return true;
    return false;
}

std::string_view nextLine(std::string_view& rest) {
    auto newline = rest.find('\n');
    auto line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view{} : rest.substr(newline + 1);
    return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace cache = hfwarm::cache;
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    auto refText = nextLine(rest);
    auto commit = nextLine(rest);
    auto path = rest;

    const fs::path root = "/cache/hub";
    hfwarm::manifest::RepoRef repo{hfwarm::manifest::RepoType::Model, "org/name", "main"};
    if (auto parsed = hfwarm::manifest::parseRepoRef(refText)) repo = *parsed;
    cache::RepoLayout layout(root, repo);
    const auto& folder = layout.folderName();
    if (folder.empty() || folder == "." || folder == ".." || folder.find('/') != std::string::npos ||
        folder.find('\0') != std::string::npos)
        fail("repo folder is not one plain name", layout.repoDir());
    if (!strictlyInside(layout.repoDir(), root))
        fail("repo folder is outside the cache root", layout.repoDir());

    (void)cache::quoteName(path);
    bool pathOk = static_cast<bool>(cache::validateRepoPath(path));
    bool commitOk = cache::isCommitSha(commit);

    auto file = layout.snapshotFile(commit, path);
    if (file.has_value() != (pathOk && commitOk)) fail("snapshotFile disagrees with the validators", root);
    if (file && !strictlyInside(*file, layout.snapshotsDir() / std::string(commit)))
        fail("accepted path maps outside its snapshot", *file);
    if (auto marker = layout.noExist(commit, path); marker && !strictlyInside(*marker, layout.noExistDir()))
        fail("accepted path maps outside .no_exist", *marker);
    if (auto ref = layout.ref(commit); ref && !strictlyInside(*ref, layout.refsDir()))
        fail("accepted revision maps outside refs", *ref);
    if (auto blob = layout.blob(commit); blob && !strictlyInside(*blob, layout.blobsDir()))
        fail("accepted etag maps outside blobs", *blob);
    if (auto ref = layout.ref(path); ref && !strictlyInside(*ref, layout.refsDir()))
        fail("accepted revision maps outside refs", *ref);
    return 0;
}
