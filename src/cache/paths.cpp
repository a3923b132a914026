#include "hfwarm/cache/paths.hpp"

#include "hfwarm/cache/root.hpp"
#include "hfwarm/util/hash.hpp"

#include <cstdio>

namespace hfwarm::cache {

namespace fs = std::filesystem;

std::string quoteName(std::string_view name) {
    // Long hostile names are cut so one message stays one readable line.
    constexpr std::size_t kShown = 200;
    std::string out = "\"";
    for (std::size_t i = 0; i < name.size() && i < kShown; ++i) {
        auto c = static_cast<unsigned char>(name[i]);
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    if (name.size() > kShown) out += "...";
    out += "\"";
    return out;
}

namespace {

// Length of the UTF-8 sequence at `i`, or 0 when it is not valid UTF-8 (overlong forms,
// surrogates and code points above U+10FFFF included). `codePoint` receives the decoded value.
std::size_t utf8Sequence(std::string_view s, std::size_t i, char32_t& codePoint) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    std::size_t length;
    char32_t value;
    if (c < 0x80) {
        codePoint = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        length = 2;
        value = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        length = 3;
        value = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        length = 4;
        value = c & 0x07;
    } else {
        return 0;
    }
    if (i + length > s.size()) return 0;
    for (std::size_t k = 1; k < length; ++k) {
        if ((byte(i + k) & 0xc0) != 0x80) return 0;
        value = (value << 6) | (byte(i + k) & 0x3f);
    }
    static constexpr char32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (value < kMinimum[length] || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return 0;
    codePoint = value;
    return length;
}

Result<void> validateRelative(std::string_view path, std::string_view what) {
    auto reject = [&](std::string_view reason) -> Result<void> {
        return makeError("unsafe " + std::string(what) + " " + quoteName(path) + ": " + std::string(reason));
    };
    if (path.empty()) return reject("it is empty");
    if (path.size() > kMaxPathBytes)
        return reject("it is " + std::to_string(path.size()) + " bytes long, the limit is " +
                      std::to_string(kMaxPathBytes));
    if (path.front() == '/') return reject("it is absolute");
    for (std::size_t i = 0; i < path.size();) {
        char32_t cp = 0;
        std::size_t length = utf8Sequence(path, i, cp);
        if (length == 0) return reject("it is not valid UTF-8 (byte " + std::to_string(i) + ")");
        if (cp == 0) return reject("it contains a NUL byte");
        if (cp == '\\') return reject("it contains a backslash");
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
            return reject("it contains a control character (byte " + std::to_string(i) + ")");
        i += length;
    }
    std::size_t start = 0;
    while (true) {
        std::size_t slash = path.find('/', start);
        std::string_view segment =
            path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (segment.empty()) return reject("it has an empty segment");
        if (segment == ".") return reject("it has a \".\" segment");
        if (segment == "..") return reject("it has a \"..\" segment that would leave the repo folder");
        if (segment.size() > kMaxSegmentBytes)
            return reject("a segment is " + std::to_string(segment.size()) + " bytes long, the limit is " +
                          std::to_string(kMaxSegmentBytes));
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return {};
}

}  // namespace

Result<void> validateRepoPath(std::string_view path) {
    return validateRelative(path, "path");
}

Result<void> validateRevision(std::string_view revision) {
    return validateRelative(revision, "revision");
}

Result<void> validateEtag(std::string_view etag) {
    if (util::isHex(etag, 40) || util::isHex(etag, 64)) return {};
    return makeError("unexpected etag " + quoteName(etag) +
                     ": expected 40 (git sha1) or 64 (sha256) lower-case hex digits");
}

bool isCommitSha(std::string_view revision) {
    return util::isHex(revision, 40);
}

namespace {

// Error is constructible from a path (it converts to a string), so result<path> needs the value
// spelled out.
Result<fs::path> pathValue(fs::path path) {
    return Result<fs::path>(boost::system::in_place_value, std::move(path));
}

Result<void> validateCommit(std::string_view commit) {
    if (isCommitSha(commit)) return {};
    return makeError("unexpected commit " + quoteName(commit) + ": expected 40 lower-case hex digits");
}

}  // namespace

RepoLayout::RepoLayout(fs::path root, const manifest::RepoRef& repo)
    : root_(std::move(root)), folderName_(repoFolderName(repo)), repoDir_(root_ / folderName_) {}

Result<fs::path> RepoLayout::blob(std::string_view etag) const {
    if (auto ok = validateEtag(etag); !ok) return ok.error();
    return pathValue(blobsDir() / std::string(etag));
}

Result<fs::path> RepoLayout::incompleteBlob(std::string_view etag) const {
    if (auto ok = validateEtag(etag); !ok) return ok.error();
    return pathValue(blobsDir() / (std::string(etag) + ".incomplete"));
}

Result<fs::path> RepoLayout::lockFile(std::string_view etag) const {
    if (auto ok = validateEtag(etag); !ok) return ok.error();
    return pathValue(locksDir() / (std::string(etag) + ".lock"));
}

Result<fs::path> RepoLayout::snapshotDir(std::string_view commit) const {
    if (auto ok = validateCommit(commit); !ok) return ok.error();
    return pathValue(snapshotsDir() / std::string(commit));
}

Result<fs::path> RepoLayout::snapshotFile(std::string_view commit, std::string_view path) const {
    if (auto ok = validateCommit(commit); !ok) return ok.error();
    if (auto ok = validateRepoPath(path); !ok) return ok.error();
    // After validation every segment is a plain name, so appending cannot climb out of the folder.
    return pathValue(snapshotsDir() / std::string(commit) / std::string(path));
}

Result<fs::path> RepoLayout::ref(std::string_view revision) const {
    if (auto ok = validateRevision(revision); !ok) return ok.error();
    return pathValue(refsDir() / std::string(revision));
}

Result<fs::path> RepoLayout::noExist(std::string_view commit, std::string_view path) const {
    if (auto ok = validateCommit(commit); !ok) return ok.error();
    if (auto ok = validateRepoPath(path); !ok) return ok.error();
    return pathValue(noExistDir() / std::string(commit) / std::string(path));
}

Result<fs::path> RepoLayout::tree(std::string_view commit) const {
    if (auto ok = validateCommit(commit); !ok) return ok.error();
    return pathValue(treesDir() / (std::string(commit) + ".json"));
}

}  // namespace hfwarm::cache
