#include "hfwarm/cache/lock.hpp"
#include "hfwarm/cache/maintenance.hpp"
#include "hfwarm/cache/paths.hpp"
#include "hfwarm/cache/root.hpp"
#include "hfwarm/cache/safe_io.hpp"
#include "hfwarm/cache/scan.hpp"
#include "hfwarm/cache/tree.hpp"
#include "hfwarm/cache/write.hpp"
#include "hfwarm/util/hash.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

using namespace hfwarm;
using namespace hfwarm::cache;
namespace fs = std::filesystem;

namespace {

const std::string kCommit = "1111111111111111111111111111111111111111";
const std::string kOtherCommit = "2222222222222222222222222222222222222222";

// A fresh folder under the system temp folder, removed with everything in it at the end.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "hfwarm-cache-test-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void writeFile(const fs::path& path, std::string_view content) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
}

std::string readFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string readLink(const fs::path& path) {
    return fs::read_symlink(path).string();
}

manifest::RepoRef repoRef(std::string id, std::string revision = "main",
                          manifest::RepoType type = manifest::RepoType::Model) {
    manifest::RepoRef ref;
    ref.type = type;
    ref.id = std::move(id);
    ref.revision = std::move(revision);
    return ref;
}

manifest::Entry entryFor(manifest::RepoRef repo, std::vector<std::string> files = {},
                         std::vector<std::string> includes = {}) {
    manifest::Selection selection;
    selection.files = std::move(files);
    selection.includes = std::move(includes);
    return manifest::Entry{std::move(repo), {std::move(selection)}};
}

bool hasProblem(const EntryScan& scan, ProblemKind kind) {
    return std::any_of(scan.problems.begin(), scan.problems.end(),
                       [&](const Problem& p) { return p.kind == kind; });
}

const Problem* findProblem(const EntryScan& scan, ProblemKind kind) {
    for (const Problem& p : scan.problems)
        if (p.kind == kind) return &p;
    return nullptr;
}

// Builds a repo folder the way huggingface_hub lays it out, with plain file system calls and
// independently of the cache module's write side.
struct HfRepo {
    fs::path dir;

    // Stores `content` as a blob named like the Hub's etag: sha256 when `lfs`, else git blob sha1.
    std::string blob(std::string_view content, bool lfs) {
        std::string etag = lfs ? util::sha256Hex(content) : util::gitBlobSha1Hex(content);
        writeFile(dir / "blobs" / etag, content);
        return etag;
    }
    // snapshots/<commit>/<path> -> ../(depth+2)blobs/<etag>, as os.path.relpath computes it.
    void pointer(const std::string& commit, const std::string& path, const std::string& etag) {
        fs::path link = dir / "snapshots" / commit / path;
        fs::create_directories(link.parent_path());
        fs::path target = fs::relative(dir / "blobs" / etag, link.parent_path());
        fs::create_symlink(target, link);
    }
    void file(const std::string& commit, const std::string& path, std::string_view content,
              bool lfs = false) {
        pointer(commit, path, blob(content, lfs));
    }
    void ref(const std::string& name, std::string_view content) { writeFile(dir / "refs" / name, content); }
};

HfRepo completeRepo(const fs::path& root) {
    HfRepo repo{root / "models--org--name"};
    repo.file(kCommit, "config.json", "{\"a\": 1}");
    repo.file(kCommit, "model.safetensors", "weights-weights", true);
    repo.file(kCommit, "1_Pooling/config.json", "{\"pooling\": true}");
    repo.ref("main", kCommit);
    return repo;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Root resolution

TEST_CASE("the --cache-dir override wins over every environment variable") {
    auto env = mapEnv({{"HOME", "/home/u"}, {"HF_HUB_CACHE", "/env/hub"}, {"HF_HOME", "/hf"}});
    CHECK(resolveRoot(fs::path("/explicit/cache"), env) == fs::path("/explicit/cache"));
    CHECK(resolveRoot(fs::path("~/c"), env) == fs::path("/home/u/c"));
}

TEST_CASE("root resolution follows huggingface_hub's precedence") {
    SUBCASE("HF_HUB_CACHE first") {
        auto env = mapEnv({{"HOME", "/home/u"},
                           {"HF_HUB_CACHE", "/a"},
                           {"HUGGINGFACE_HUB_CACHE", "/b"},
                           {"HF_HOME", "/c"},
                           {"XDG_CACHE_HOME", "/d"}});
        CHECK(resolveRoot(std::nullopt, env) == fs::path("/a"));
    }
    SUBCASE("then the legacy HUGGINGFACE_HUB_CACHE") {
        auto env = mapEnv({{"HOME", "/home/u"},
                           {"HUGGINGFACE_HUB_CACHE", "/b"},
                           {"HF_HOME", "/c"},
                           {"XDG_CACHE_HOME", "/d"}});
        CHECK(resolveRoot(std::nullopt, env) == fs::path("/b"));
    }
    SUBCASE("then HF_HOME/hub") {
        auto env = mapEnv({{"HOME", "/home/u"}, {"HF_HOME", "/c"}, {"XDG_CACHE_HOME", "/d"}});
        CHECK(resolveRoot(std::nullopt, env) == fs::path("/c/hub"));
    }
    SUBCASE("then XDG_CACHE_HOME/huggingface/hub") {
        auto env = mapEnv({{"HOME", "/home/u"}, {"XDG_CACHE_HOME", "/d"}});
        CHECK(resolveRoot(std::nullopt, env) == fs::path("/d/huggingface/hub"));
    }
    SUBCASE("then ~/.cache/huggingface/hub") {
        auto env = mapEnv({{"HOME", "/home/u"}});
        CHECK(resolveRoot(std::nullopt, env) == fs::path("/home/u/.cache/huggingface/hub"));
    }
}

TEST_CASE("tilde and variables in cache variables are expanded as huggingface_hub does") {
    auto env = mapEnv({{"HOME", "/home/u"}, {"BASE", "/data"}});
    CHECK(resolveRoot(std::nullopt, mapEnv({{"HOME", "/home/u"}, {"HF_HUB_CACHE", "~/hc"}})) ==
          fs::path("/home/u/hc"));
    CHECK(resolveRoot(std::nullopt,
                      mapEnv({{"HOME", "/home/u"}, {"BASE", "/data"}, {"HF_HUB_CACHE", "$BASE/hc"}})) ==
          fs::path("/data/hc"));
    CHECK(resolveRoot(std::nullopt,
                      mapEnv({{"HOME", "/home/u"}, {"BASE", "/data"}, {"HF_HUB_CACHE", "${BASE}/hc"}})) ==
          fs::path("/data/hc"));
    CHECK(resolveRoot(std::nullopt, mapEnv({{"HOME", "/home/u"}, {"HF_HOME", "~/hh"}})) ==
          fs::path("/home/u/hh/hub"));
    CHECK(resolveRoot(std::nullopt,
                      mapEnv({{"HOME", "/home/u"}, {"BASE", "/data"}, {"HF_HOME", "$BASE/hh"}})) ==
          fs::path("/data/hh/hub"));
    // The legacy variable is expanded through HF_HUB_CACHE's default, XDG_CACHE_HOME through HF_HOME's.
    CHECK(resolveRoot(std::nullopt, mapEnv({{"HOME", "/home/u"}, {"HUGGINGFACE_HUB_CACHE", "~/legacy"}})) ==
          fs::path("/home/u/legacy"));
    CHECK(resolveRoot(std::nullopt, mapEnv({{"HOME", "/home/u"}, {"XDG_CACHE_HOME", "~/xdg"}})) ==
          fs::path("/home/u/xdg/huggingface/hub"));
}

TEST_CASE("a relative cache variable is taken from the working directory") {
    auto root = resolveRoot(std::nullopt, mapEnv({{"HOME", "/home/u"}, {"HF_HUB_CACHE", "rel/hub"}}));
    CHECK(root == fs::current_path() / "rel/hub");
}

TEST_CASE("expandUser behaves like os.path.expanduser") {
    auto env = mapEnv({{"HOME", "/home/u/"}});
    CHECK(expandUser("~", env) == "/home/u");
    CHECK(expandUser("~/x/y", env) == "/home/u/x/y");
    CHECK(expandUser("a/~/b", env) == "a/~/b");
    CHECK(expandUser("~no-such-user-hfwarm/x", env) == "~no-such-user-hfwarm/x");
    CHECK(expandUser("~/x", mapEnv({{"HOME", "/"}})) == "/x");
    CHECK(expandUser("~", mapEnv({{"HOME", "/"}})) == "/");
}

TEST_CASE("expandVars behaves like os.path.expandvars") {
    auto env = mapEnv({{"A", "1"}, {"B", "two"}, {"EMPTY", ""}});
    CHECK(expandVars("$A/$B", env) == "1/two");
    CHECK(expandVars("${A}x", env) == "1x");
    CHECK(expandVars("$Ax", env) == "$Ax");
    CHECK(expandVars("$A$A", env) == "11");
    CHECK(expandVars("$NOPE/x", env) == "$NOPE/x");
    CHECK(expandVars("${NOPE}/x", env) == "${NOPE}/x");
    CHECK(expandVars("a$", env) == "a$");
    CHECK(expandVars("$/x", env) == "$/x");
    CHECK(expandVars("${A", env) == "${A");
    CHECK(expandVars("x$EMPTY/y", env) == "x/y");
}

TEST_CASE("Candle's fixed cache folder gets a note only when the root is elsewhere") {
    TempDir home;
    auto env = mapEnv({{"HOME", home.path.string()}});
    fs::path candle = home.path / ".cache/huggingface/hub";
    CHECK_FALSE(candleRootNote(candle, env).has_value());
    fs::create_directories(candle);
    CHECK_FALSE(candleRootNote(candle, env).has_value());

    auto note = candleRootNote("/srv/hf/hub", env);
    REQUIRE(note.has_value());
    CHECK(note->find(candle.string()) != std::string::npos);
    CHECK(note->find("/srv/hf/hub") != std::string::npos);
    CHECK(note->find("HF_HOME=/srv/hf") != std::string::npos);
    CHECK(note->find('\n') == std::string::npos);
}

TEST_CASE("repo folder names join the type and the id with --") {
    CHECK(repoFolderName(repoRef("org/name")) == "models--org--name");
    CHECK(repoFolderName(repoRef("gpt2")) == "models--gpt2");
    CHECK(repoFolderName(repoRef("org/data", "main", manifest::RepoType::Dataset)) == "datasets--org--data");
    CHECK(repoFolderName(repoRef("org/app", "main", manifest::RepoType::Space)) == "spaces--org--app");
}

// ---------------------------------------------------------------------------------------------
// Path validation

TEST_CASE("hostile server paths are rejected with the path and the reason") {
    struct Case {
        std::string path;
        std::string reason;
    };
    const std::vector<Case> cases = {
        {"", "empty"},
        {"/etc/passwd", "absolute"},
        {"../x", "\"..\""},
        {"a/../../b", "\"..\""},
        {"a/..", "\"..\""},
        {"./a", "\".\""},
        {"a/./b", "\".\""},
        {"a//b", "empty segment"},
        {"a/", "empty segment"},
        {"a\\b", "backslash"},
        {"..\\..\\x", "backslash"},
        {std::string("a\0b", 3), "NUL"},
        {"a\nb", "control character"},
        {"a\x1b[31m", "control character"},
        {"a\x7f", "control character"},
        {"a\xc2\x85", "control character"},
        {"a\xff", "UTF-8"},
        {"\xc0\xaf", "UTF-8"},
        {"\xed\xa0\x80", "UTF-8"},
        {std::string(256, 'a'), "segment is 256 bytes"},
        {"d/" + std::string(256, 'b') + "/f", "segment is 256 bytes"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.path);
        auto result = validateRepoPath(c.path);
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().message.find(c.reason) != std::string::npos);
        CHECK(result.error().message.find("unsafe path \"") == 0);
    }
    std::string tooLong;
    while (tooLong.size() <= kMaxPathBytes) tooLong += std::string(100, 'x') + "/";
    tooLong += "f";
    auto result = validateRepoPath(tooLong);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message.find("the limit is 4096") != std::string::npos);
}

TEST_CASE("control characters in a rejected path are shown escaped") {
    auto result = validateRepoPath("evil\nname");
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message.find("\"evil\\x0aname\"") != std::string::npos);
    CHECK(result.error().message.find('\n') == std::string::npos);
}

TEST_CASE("unicode, dotted and long-but-legal names are valid") {
    std::string longPath;
    while (kMaxPathBytes - longPath.size() > kMaxSegmentBytes) longPath += std::string(200, 'd') + "/";
    longPath += std::string(kMaxPathBytes - longPath.size(), 'f');
    REQUIRE(longPath.size() == kMaxPathBytes);
    for (const std::string& path :
         {std::string("config.json"), std::string("1_Pooling/config.json"), std::string(".gitattributes"),
          std::string("..foo"), std::string("a..b/c"), std::string("日本語/モデル.bin"),
          std::string("emoji 😀.txt"), std::string("with space/and-dash_underscore+plus#hash"),
          std::string(255, 's'), longPath}) {
        CAPTURE(path);
        CHECK(validateRepoPath(path).has_value());
    }
}

TEST_CASE("revisions, etags and commits are checked before they become paths") {
    CHECK(validateRevision("refs/pr/1").has_value());
    CHECK(validateRevision("v1.0").has_value());
    CHECK_FALSE(validateRevision("../main").has_value());
    CHECK(validateEtag(std::string(40, 'a')).has_value());
    CHECK(validateEtag(std::string(64, '0')).has_value());
    CHECK_FALSE(validateEtag("../../etc/passwd").has_value());
    CHECK_FALSE(validateEtag(std::string(64, 'A')).has_value());
    CHECK(isCommitSha(kCommit));
    CHECK_FALSE(isCommitSha("ABCDEF1111111111111111111111111111111111"));
    CHECK_FALSE(isCommitSha("main"));
}

TEST_CASE("the layout maps validated names inside the repo folder") {
    RepoLayout layout("/cache", repoRef("org/name"));
    CHECK(layout.repoDir() == fs::path("/cache/models--org--name"));
    CHECK(layout.snapshotFile(kCommit, "1_Pooling/config.json").value() ==
          fs::path("/cache/models--org--name/snapshots/" + kCommit + "/1_Pooling/config.json"));
    const std::string etag(64, 'e');
    CHECK(layout.blob(etag).value() == fs::path("/cache/models--org--name/blobs/" + etag));
    CHECK(layout.incompleteBlob(etag).value() ==
          fs::path("/cache/models--org--name/blobs/" + etag + ".incomplete"));
    CHECK(layout.lockFile(etag).value() == fs::path("/cache/.locks/models--org--name/" + etag + ".lock"));
    CHECK(layout.ref("refs/pr/1").value() == fs::path("/cache/models--org--name/refs/refs/pr/1"));
    CHECK(layout.noExist(kCommit, "a/b.txt").value() ==
          fs::path("/cache/models--org--name/.no_exist/" + kCommit + "/a/b.txt"));
    CHECK(layout.tree(kCommit).value() == fs::path("/cache/models--org--name/trees/" + kCommit + ".json"));
    CHECK(layout.cachedirTag() == fs::path("/cache/CACHEDIR.TAG"));
    CHECK_FALSE(layout.snapshotFile(kCommit, "../../../escape").has_value());
    CHECK_FALSE(layout.snapshotFile("../x", "a").has_value());
    CHECK_FALSE(layout.blob("..").has_value());
}

// ---------------------------------------------------------------------------------------------
// Write side

TEST_CASE("snapshot pointers are relative symlinks with one ../ per folder level") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    REQUIRE(prepareRepo(layout).has_value());
    const std::string etag(40, 'a');
    writeFile(layout.blob(etag).value(), "x");

    REQUIRE(linkSnapshot(layout, kCommit, "config.json", etag).has_value());
    REQUIRE(linkSnapshot(layout, kCommit, "1_Pooling/config.json", etag).has_value());
    REQUIRE(linkSnapshot(layout, kCommit, "a/b/c/d.bin", etag).has_value());
    const fs::path snap = layout.snapshotsDir() / kCommit;
    CHECK(readLink(snap / "config.json") == "../../blobs/" + etag);
    CHECK(readLink(snap / "1_Pooling/config.json") == "../../../blobs/" + etag);
    CHECK(readLink(snap / "a/b/c/d.bin") == "../../../../../blobs/" + etag);
    CHECK(readFile(snap / "a/b/c/d.bin") == "x");
    CHECK(snapshotLinkTarget("1_Pooling/config.json", etag) == "../../../blobs/" + etag);
}

TEST_CASE("linking replaces a different pointer and accepts an identical one") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    const std::string oldEtag(40, 'a'), newEtag(40, 'b');
    REQUIRE(linkSnapshot(layout, kCommit, "f.txt", oldEtag).has_value());
    REQUIRE(linkSnapshot(layout, kCommit, "f.txt", newEtag).has_value());
    CHECK(readLink(layout.snapshotsDir() / kCommit / "f.txt") == "../../blobs/" + newEtag);
    REQUIRE(linkSnapshot(layout, kCommit, "f.txt", newEtag).has_value());

    // A copy left by a no-symlink client is replaced by the pointer.
    writeFile(layout.snapshotsDir() / kCommit / "copy.txt", "copy");
    REQUIRE(linkSnapshot(layout, kCommit, "copy.txt", newEtag).has_value());
    CHECK(fs::is_symlink(layout.snapshotsDir() / kCommit / "copy.txt"));

    fs::create_directories(layout.snapshotsDir() / kCommit / "dir.txt");
    auto blocked = linkSnapshot(layout, kCommit, "dir.txt", newEtag);
    REQUIRE_FALSE(blocked.has_value());
    CHECK(blocked.error().message.find("folder of that name is in the way") != std::string::npos);

    // No temp pointer is left behind.
    for (const auto& item : fs::directory_iterator(layout.snapshotsDir() / kCommit))
        CHECK(item.path().filename().string().find(".hfwarm-") == std::string::npos);
}

TEST_CASE("hostile names are refused by every write step") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    const std::string etag(40, 'a');
    CHECK_FALSE(linkSnapshot(layout, kCommit, "../../../outside", etag).has_value());
    CHECK_FALSE(linkSnapshot(layout, kCommit, "/abs", etag).has_value());
    CHECK_FALSE(linkSnapshot(layout, kCommit, "ok.txt", "../../x").has_value());
    CHECK_FALSE(markNoExist(layout, kCommit, "a/../../../x").has_value());
    CHECK_FALSE(writeRef(layout, "../../outside", kCommit).has_value());
    CHECK_FALSE(writeTree(layout, kCommit, {TreeFile{"../x", 1, etag, {}, {}, {}}}).has_value());
    CHECK_FALSE(fs::exists(tmp.path / "outside"));
    CHECK_FALSE(fs::exists(tmp.path / "x"));
}

TEST_CASE("a symlinked folder leading out of the cache is never written through") {
    TempDir tmp;
    fs::path root = tmp.path / "cache";
    fs::path outside = tmp.path / "sentinel";
    fs::create_directories(outside);
    RepoLayout layout(root, repoRef("org/name"));
    REQUIRE(prepareRepo(layout).has_value());
    fs::create_directory_symlink(outside, layout.snapshotsDir() / kCommit);

    auto result = linkSnapshot(layout, kCommit, "config.json", std::string(40, 'a'));
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message.find(": it is a symlink, and hfwarm never follows one inside the cache") !=
          std::string::npos);
    CHECK(result.error().message.find((layout.snapshotsDir() / kCommit).string()) != std::string::npos);
    CHECK(fs::is_empty(outside));

    fs::create_directory_symlink(outside, layout.repoDir() / ".no_exist");
    CHECK_FALSE(markNoExist(layout, kCommit, "x").has_value());
    CHECK(fs::is_empty(outside));
}

TEST_CASE("a symlinked folder is refused even when it stays inside the cache") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    REQUIRE(prepareRepo(layout).has_value());
    fs::create_directories(tmp.path / "elsewhere-in-cache");
    fs::create_directory_symlink(tmp.path / "elsewhere-in-cache", layout.snapshotsDir() / kCommit);
    auto result = linkSnapshot(layout, kCommit, "config.json", std::string(40, 'a'));
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message.find("is a symlink") != std::string::npos);
    CHECK(fs::is_empty(tmp.path / "elsewhere-in-cache"));
}

TEST_CASE("a symlinked repo folder, .locks or lock folder is refused and nothing is written through it") {
    TempDir tmp;
    fs::path root = tmp.path / "cache";
    fs::path outside = tmp.path / "outside";
    fs::create_directories(root);
    fs::create_directories(outside);
    RepoLayout layout(root, repoRef("org/name"));
    const std::string etag(64, 'a');

    SUBCASE("the repo folder") {
        fs::create_directory_symlink(outside, layout.repoDir());
        auto result = prepareRepo(layout);
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().message.find(layout.repoDir().string() + ": it is a symlink") !=
              std::string::npos);
        CHECK_FALSE(writeRef(layout, "main", kCommit).has_value());
        CHECK_FALSE(markNoExist(layout, kCommit, "x").has_value());
        CHECK_FALSE(writeTree(layout, kCommit, {}).has_value());
    }
    SUBCASE(".locks") {
        fs::create_directory_symlink(outside, root / ".locks");
        CHECK_FALSE(prepareRepo(layout).has_value());
        auto lock = BlobLock::tryAcquire(root, layout.lockFile(etag).value());
        REQUIRE_FALSE(lock.has_value());
        CHECK(lock.error().message.find((root / ".locks").string() + ": it is a symlink") !=
              std::string::npos);
    }
    SUBCASE(".locks/<repo folder>") {
        fs::create_directories(root / ".locks");
        fs::create_directory_symlink(outside, layout.locksDir());
        CHECK_FALSE(prepareRepo(layout).has_value());
        CHECK_FALSE(BlobLock::tryAcquire(root, layout.lockFile(etag).value()).has_value());
    }
    SUBCASE("a state file's temp name") {
        fs::create_directories(layout.locksDir());
        fs::create_symlink(outside / "victim", layout.locksDir() / (etag + ".segments.tmp"));
        CHECK_FALSE(openCacheFile(root, layout.locksDir() / (etag + ".segments.tmp"), O_WRONLY | O_CREAT)
                        .has_value());
        REQUIRE(writeCacheFile(root, layout.locksDir() / (etag + ".segments"), "{}").has_value());
        CHECK(readFile(layout.locksDir() / (etag + ".segments")) == "{}");
    }
    CHECK(fs::is_empty(outside));
}

TEST_CASE(
    "a state file is rewritten through <name>.tmp, whatever a killed writer or a planted symlink left "
    "there") {
    TempDir tmp;
    fs::path outside = tmp.path / "outside";
    writeFile(outside, "keep");
    fs::path state = tmp.path / ".locks" / "models--org--name" / "x.segments";
    fs::create_directories(state.parent_path());
    writeFile(state.string() + ".tmp", "half a write of a killed process");
    REQUIRE(writeCacheFile(tmp.path, state, "{\"size\": 1}").has_value());
    CHECK(readFile(state) == "{\"size\": 1}");
    CHECK_FALSE(fs::exists(state.string() + ".tmp"));

    fs::create_symlink(outside, state.string() + ".tmp");
    REQUIRE(writeCacheFile(tmp.path, state, "{\"size\": 2}").has_value());
    CHECK(readFile(state) == "{\"size\": 2}");
    CHECK(readFile(outside) == "keep");
    CHECK(std::vector<fs::path>(fs::directory_iterator(state.parent_path()), {}) ==
          std::vector<fs::path>{state});
}

TEST_CASE("cache files are read only when regular and within their size limit") {
    TempDir tmp;
    writeFile(tmp.path / "small", "abc");
    CHECK(readCacheFile(tmp.path, tmp.path / "small", 3).value() == "abc");
    CHECK_FALSE(readCacheFile(tmp.path, tmp.path / "absent", 3).value().has_value());
    auto big = readCacheFile(tmp.path, tmp.path / "small", 2);
    REQUIRE_FALSE(big.has_value());
    CHECK(big.error().message.find("more than the 2") != std::string::npos);
    fs::create_symlink("/dev/zero", tmp.path / "zero");
    CHECK_FALSE(readCacheFile(tmp.path, tmp.path / "zero", 3).has_value());
    REQUIRE(::mkfifo((tmp.path / "fifo").c_str(), 0600) == 0);
    auto fifo = readCacheFile(tmp.path, tmp.path / "fifo", 3);
    REQUIRE_FALSE(fifo.has_value());
    CHECK(fifo.error().message.find("not a regular file") != std::string::npos);
    CHECK_FALSE(readCacheFile(tmp.path, "/etc/hostname", 4096).has_value());
}

TEST_CASE("a blob that is a symlink is never ready: not for the engine, lookup, scan or verify") {
    TempDir tmp;
    fs::path root = tmp.path / "cache";
    const std::string content = "right size, wrong bytes";
    const std::string etag = util::gitBlobSha1Hex("the real content of it!");
    REQUIRE(content.size() == std::string("the real content of it!").size());
    writeFile(tmp.path / "planted", content);
    RepoLayout layout(root, repoRef("org/name"));
    REQUIRE(prepareRepo(layout).has_value());
    fs::path blob = layout.blob(etag).value();
    fs::create_symlink(tmp.path / "planted", blob);
    REQUIRE(linkSnapshot(layout, kCommit, "config.json", etag).has_value());
    REQUIRE(writeRef(layout, "main", kCommit).has_value());

    CHECK_FALSE(isCacheFileOfSize(root, blob, content.size()));
    CHECK(lookup(root, repoRef("org/name"), "config.json").value().state == LookupState::Unknown);
    auto scan = scanEntry(root, entryFor(repoRef("org/name")));
    CHECK(scan.state != EntryState::Ready);
    CHECK(std::any_of(scan.problems.begin(), scan.problems.end(),
                      [](const Problem& p) { return p.kind == ProblemKind::SymlinkInCache; }));
    auto verified = verifyBlob(blob, etag);
    REQUIRE_FALSE(verified.has_value());
    CHECK(verified.error().message.find("symlink") != std::string::npos);

    // A download replaces the planted symlink, never its target.
    fs::path incomplete = layout.incompleteBlob(etag).value();
    writeFile(incomplete, "the real content of it!");
    CHECK(publishBlob(root, incomplete, blob).value() == PublishOutcome::Published);
    CHECK_FALSE(fs::is_symlink(blob));
    CHECK(isCacheFileOfSize(root, blob, content.size()));
    CHECK(readFile(tmp.path / "planted") == content);
    CHECK(lookup(root, repoRef("org/name"), "config.json").value().state == LookupState::Cached);
}

TEST_CASE("a symlinked repo folder is missing to the scanner and unknown to lookup") {
    TempDir tmp;
    completeRepo(tmp.path / "elsewhere");
    fs::create_directories(tmp.path / "cache");
    fs::create_directory_symlink(tmp.path / "elsewhere" / "models--org--name",
                                 tmp.path / "cache" / "models--org--name");
    auto scan = scanEntry(tmp.path / "cache", entryFor(repoRef("org/name")));
    CHECK(scan.state == EntryState::Missing);
    REQUIRE_FALSE(scan.problems.empty());
    CHECK(scan.problems.front().kind == ProblemKind::SymlinkInCache);
    CHECK(lookup(tmp.path / "cache", repoRef("org/name"), "config.json").value().state ==
          LookupState::Unknown);
}

TEST_CASE("refs hold exactly the commit, with no newline, and nest on slashes") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    REQUIRE(writeRef(layout, "main", kCommit).has_value());
    CHECK(readFile(layout.refsDir() / "main") == kCommit);
    CHECK(fs::file_size(layout.refsDir() / "main") == 40);
    REQUIRE(writeRef(layout, "main", kOtherCommit).has_value());
    CHECK(readFile(layout.refsDir() / "main") == kOtherCommit);
    REQUIRE(writeRef(layout, "refs/pr/1", kCommit).has_value());
    CHECK(readFile(layout.refsDir() / "refs/pr/1") == kCommit);
    // A sha-pinned revision gets refs/<sha> for hf-hub 0.x.
    REQUIRE(writeRef(layout, kCommit, kCommit).has_value());
    CHECK(readFile(layout.refsDir() / kCommit) == kCommit);

    auto bad = writeRef(layout, "main", kCommit + "\n");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("not a 40-hex commit") != std::string::npos);
    CHECK_FALSE(writeRef(layout, "main", "ABC").has_value());
    CHECK(readFile(layout.refsDir() / "main") == kOtherCommit);

    std::size_t files = 0;
    for (const auto& item : fs::recursive_directory_iterator(layout.refsDir()))
        if (item.is_regular_file()) ++files;
    CHECK(files == 3);  // no temp files left
}

TEST_CASE("no_exist markers are empty files under the commit") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    REQUIRE(markNoExist(layout, kCommit, "sub/missing.bin").has_value());
    fs::path marker = layout.repoDir() / ".no_exist" / kCommit / "sub/missing.bin";
    CHECK(fs::is_regular_file(marker));
    CHECK(fs::file_size(marker) == 0);
    REQUIRE(markNoExist(layout, kCommit, "sub/missing.bin").has_value());
}

TEST_CASE("the tree listing is byte-identical to huggingface_hub's json.dump(indent=1)") {
    std::vector<TreeFile> files = {
        TreeFile{"model.safetensors", 5, std::string(40, 'b'), std::string(64, 'c'), 5, std::string(64, 'd')},
        TreeFile{"config.json", 12, std::string(40, 'a'), {}, {}, {}},
        TreeFile{"日本/ü 😀.txt", 0, std::string(40, 'e'), {}, {}, {}},
        TreeFile{"1_Pooling/config.json", 3, std::string(40, 'f'), {}, {}, {}},
    };
    // Produced by Python's json.dumps(data, indent=1) for the same listing.
    const std::string expected =
        "{\n \"format_version\": 1,\n \"files\": {\n  \"1_Pooling/config.json\": {\n   \"size\": 3,\n   "
        "\"blob_id\": \"ffffffffffffffffffffffffffffffffffffffff\"\n  },\n  \"config.json\": {\n   \"size\": "
        "12,\n   "
        "\"blob_id\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n  },\n  \"model.safetensors\": {\n   "
        "\"size\": "
        "5,\n   \"blob_id\": \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\n   \"lfs_sha256\": "
        "\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\",\n   \"lfs_size\": 5,\n   "
        "\"xet_hash\": \"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\"\n  },\n  "
        "\"\\u65e5\\u672c/\\u00fc \\ud83d\\ude00.txt\": {\n   \"size\": 0,\n   \"blob_id\": "
        "\"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"\n  }\n }\n}";
    CHECK(treeJson(files) == expected);
    CHECK(treeJson({}) == "{\n \"format_version\": 1,\n \"files\": {}\n}");

    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    REQUIRE(writeTree(layout, kCommit, files).has_value());
    CHECK(readFile(layout.treesDir() / (kCommit + ".json")) == expected);

    auto back = readTree(layout, kCommit);
    REQUIRE(back.has_value());
    REQUIRE(back->has_value());
    std::sort(files.begin(), files.end(),
              [](const TreeFile& a, const TreeFile& b) { return a.path < b.path; });
    CHECK(**back == files);
    CHECK_FALSE(readTree(layout, kOtherCommit).value().has_value());

    auto badXet =
        writeTree(layout, kCommit, {TreeFile{"a", 1, std::string(40, 'a'), {}, {}, std::string("zz")}});
    REQUIRE_FALSE(badXet.has_value());
    CHECK(badXet.error().message.find("would ignore the whole listing") != std::string::npos);
}

TEST_CASE("CACHEDIR.TAG has the standard signature and is never rewritten") {
    TempDir tmp;
    fs::path root = tmp.path / "hub";
    REQUIRE(writeCachedirTag(root).has_value());
    CHECK(readFile(root / "CACHEDIR.TAG") ==
          "Signature: 8a477f597d28d172789f06886806bc55\n"
          "# This file is a cache directory tag created by huggingface_hub.\n"
          "# For information about cache directory tags, see:\n"
          "#\thttps://bford.info/cachedir/\n");
    writeFile(root / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n# mine\n");
    REQUIRE(writeCachedirTag(root).has_value());
    CHECK(readFile(root / "CACHEDIR.TAG") == "Signature: 8a477f597d28d172789f06886806bc55\n# mine\n");
}

TEST_CASE("publishing renames the temp file onto the blob") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    REQUIRE(prepareRepo(layout).has_value());
    const std::string content = "hello\n";
    const std::string etag = util::gitBlobSha1Hex(content);
    fs::path incomplete = layout.incompleteBlob(etag).value();
    fs::path blob = layout.blob(etag).value();

    writeFile(incomplete, content);
    CHECK(publishBlob(tmp.path, incomplete, blob).value() == PublishOutcome::Published);
    CHECK(readFile(blob) == content);
    CHECK_FALSE(fs::exists(incomplete));

    SUBCASE("an existing identical blob is replaced") {
        writeFile(incomplete, content);
        CHECK(publishBlob(tmp.path, incomplete, blob).value() == PublishOutcome::Published);
        CHECK(readFile(blob) == content);
    }
    SUBCASE("a vanished temp file with the blob in place means another process published it") {
        CHECK(publishBlob(tmp.path, incomplete, blob).value() == PublishOutcome::AlreadyPresent);
    }
    SUBCASE("a vanished temp file without a blob is an error naming the file") {
        fs::remove(blob);
        auto result = publishBlob(tmp.path, incomplete, blob);
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().message.find(incomplete.string()) != std::string::npos);
        CHECK(result.error().message.find("disappeared") != std::string::npos);
    }
}

TEST_CASE("blobs are verified against their name and size") {
    TempDir tmp;
    const std::string content = "some bytes";
    const std::string sha256 = util::sha256Hex(content);
    const std::string sha1 = util::gitBlobSha1Hex(content);
    writeFile(tmp.path / "blob", content);
    CHECK(verifyBlob(tmp.path / "blob", sha256).has_value());
    CHECK(verifyBlob(tmp.path / "blob", sha1, content.size()).has_value());

    auto wrongSize = verifyBlob(tmp.path / "blob", sha256, 99);
    REQUIRE_FALSE(wrongSize.has_value());
    CHECK(wrongSize.error().message.find("10 bytes, the Hub lists 99") != std::string::npos);

    writeFile(tmp.path / "blob", "some bytez");
    auto corrupt = verifyBlob(tmp.path / "blob", sha256);
    REQUIRE_FALSE(corrupt.has_value());
    CHECK(corrupt.error().message.find("is corrupt") != std::string::npos);
    CHECK(corrupt.error().message.find("expected " + sha256) != std::string::npos);
    CHECK_FALSE(verifyBlob(tmp.path / "blob", "not-a-hash").has_value());
    CHECK_FALSE(verifyBlob(tmp.path / "missing", sha256).has_value());
}

TEST_CASE("free space is reported and a shortfall names the path and the bytes") {
    TempDir tmp;
    auto available = freeSpace(tmp.path / "not/yet/created");
    REQUIRE(available.has_value());
    CHECK(*available > 0);
    CHECK(checkFreeSpace(tmp.path, 1).has_value());
    auto tooMuch = checkFreeSpace(tmp.path, std::uint64_t{1} << 62);
    REQUIRE_FALSE(tooMuch.has_value());
    CHECK(tooMuch.error().message.find(tmp.path.string()) != std::string::npos);
    CHECK(tooMuch.error().message.find(std::to_string(std::uint64_t{1} << 62) + " bytes") !=
          std::string::npos);
    CHECK(tooMuch.error().message.find("available") != std::string::npos);
}

TEST_CASE("prepareRepo creates the repo folders and the lock folder") {
    TempDir tmp;
    RepoLayout layout(tmp.path / "hub", repoRef("org/name"));
    REQUIRE(prepareRepo(layout).has_value());
    CHECK(fs::is_directory(layout.blobsDir()));
    CHECK(fs::is_directory(layout.snapshotsDir()));
    CHECK(fs::is_directory(layout.refsDir()));
    CHECK(fs::is_directory(tmp.path / "hub/.locks/models--org--name"));
}

// ---------------------------------------------------------------------------------------------
// Locks

TEST_CASE("a blob lock excludes a second acquisition until it is released") {
    TempDir tmp;
    fs::path path = tmp.path / ".locks/models--org--name" / (std::string(64, 'a') + ".lock");
    auto first = BlobLock::tryAcquire(tmp.path, path);
    REQUIRE(first.has_value());
    REQUIRE(first->has_value());
    CHECK(((fs::status(path).permissions() & fs::perms::all) ==
           (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::group_write |
            fs::perms::others_read)));

    auto second = BlobLock::tryAcquire(tmp.path, path);
    REQUIRE(second.has_value());
    CHECK_FALSE(second->has_value());

    first->reset();
    CHECK(fs::exists(path));  // released without unlinking
    auto third = BlobLock::tryAcquire(tmp.path, path);
    REQUIRE(third.has_value());
    CHECK(third->has_value());

    BlobLock moved = std::move(**third);
    CHECK(moved.path() == path);
    CHECK_FALSE(BlobLock::tryAcquire(tmp.path, path).value().has_value());
}

TEST_CASE("a flock held through another descriptor, as Python's filelock holds it, blocks tryAcquire") {
    TempDir tmp;
    fs::path path = tmp.path / "x.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0664);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    CHECK_FALSE(BlobLock::tryAcquire(tmp.path, path).value().has_value());

    // filelock's release unlinks the file, then unlocks: the next lock is taken on a new file.
    ::unlink(path.c_str());
    ::flock(fd, LOCK_UN);
    ::close(fd);
    auto lock = BlobLock::tryAcquire(tmp.path, path);
    REQUIRE(lock.has_value());
    CHECK(lock->has_value());
    CHECK(fs::exists(path));
}

TEST_CASE("a lock file behind a symlink is refused") {
    TempDir tmp;
    writeFile(tmp.path / "target", "");
    fs::create_symlink(tmp.path / "target", tmp.path / "evil.lock");
    auto result = BlobLock::tryAcquire(tmp.path, tmp.path / "evil.lock");
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message.find("evil.lock") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Scanner

TEST_CASE("a complete huggingface_hub cache is ready") {
    TempDir tmp;
    completeRepo(tmp.path);
    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name")));
    CHECK(scan.state == EntryState::Ready);
    CHECK(scan.commit == kCommit);
    CHECK(scan.filesPresent == 3);
    CHECK(scan.filesExpected == 3);
    CHECK(scan.expectedFrom == ExpectedSource::Snapshot);
    CHECK(scan.bytesPresent == std::string("{\"a\": 1}weights-weights{\"pooling\": true}").size());
    CHECK(scan.problems.empty());
    CHECK(stateName(scan.state) == "ready");
}

TEST_CASE("with a tree listing the scanner knows exactly what is missing") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    RepoLayout layout(tmp.path, repoRef("org/name"));
    std::vector<TreeFile> listing = {
        TreeFile{"config.json", 8, std::string(40, 'a'), {}, {}, {}},
        TreeFile{"model.safetensors", 15, std::string(40, 'b'), std::string(64, 'c'), 15, {}},
        TreeFile{"1_Pooling/config.json", 17, std::string(40, 'd'), {}, {}, {}},
        TreeFile{"tokenizer.json", 100, std::string(40, 'e'), {}, {}, {}},
    };
    writeFile(layout.tree(kCommit).value(), treeJson(listing));

    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name")));
    CHECK(scan.state == EntryState::Partial);
    CHECK(scan.expectedFrom == ExpectedSource::Tree);
    CHECK(scan.filesExpected == 4);
    CHECK(scan.filesPresent == 3);
    CHECK(scan.bytesExpected == 140u);
    CHECK(scan.missingFiles == std::vector<std::string>{"tokenizer.json"});

    auto jsonOnly = scanEntry(tmp.path, entryFor(repoRef("org/name"), {}, {"*.json"}));
    CHECK(jsonOnly.filesExpected == 3);
    CHECK(jsonOnly.missingFiles == std::vector<std::string>{"tokenizer.json"});

    auto safetensors = scanEntry(tmp.path, entryFor(repoRef("org/name"), {}, {"*.safetensors"}));
    CHECK(safetensors.state == EntryState::Ready);
    CHECK(safetensors.filesExpected == 1);
    CHECK(safetensors.bytesPresent == 15);

    repo.file(kCommit, "tokenizer.json", "tok");
    CHECK(scanEntry(tmp.path, entryFor(repoRef("org/name"))).state == EntryState::Ready);
}

TEST_CASE("a ref with a trailing newline makes the entry partial and is reported") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    repo.ref("main", kCommit + "\n");
    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name")));
    CHECK(scan.state == EntryState::Partial);
    CHECK(scan.commit == kCommit);
    const Problem* problem = findProblem(scan, ProblemKind::RefWhitespace);
    REQUIRE(problem != nullptr);
    CHECK(problem->path == repo.dir / "refs/main");
    CHECK(problem->message.find("whitespace or a newline") != std::string::npos);
    CHECK_FALSE(hasProblem(scan, ProblemKind::RefMissingSnapshot));
}

TEST_CASE("a broken symlink is a missing file and a problem") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    fs::remove(repo.dir / "blobs" / util::sha256Hex("weights-weights"));
    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name"), {"model.safetensors", "config.json"}));
    CHECK(scan.state == EntryState::Partial);
    CHECK(scan.expectedFrom == ExpectedSource::FileList);
    CHECK(scan.filesPresent == 1);
    CHECK(scan.missingFiles == std::vector<std::string>{"model.safetensors"});
    const Problem* problem = findProblem(scan, ProblemKind::BrokenSymlink);
    REQUIRE(problem != nullptr);
    CHECK(problem->path == repo.dir / "snapshots" / kCommit / "model.safetensors");
}

TEST_CASE("leftover partial files of every client are reported, lock files are not") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    const std::string etag(64, '9');
    writeFile(repo.dir / "blobs" / (etag + ".incomplete"), "half");
    writeFile(repo.dir / "blobs" / (etag + ".0a1b2c3d.incomplete"), "half");
    writeFile(repo.dir / "blobs" / (etag + ".part"), "half");
    writeFile(repo.dir / "blobs" / (etag + ".sync.part"), "half");
    writeFile(repo.dir / "blobs" / (etag + ".lock"), "");
    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name")));
    CHECK(scan.state == EntryState::Ready);
    std::size_t leftovers = 0;
    for (const Problem& p : scan.problems) {
        if (p.kind == ProblemKind::IncompleteLeftover) ++leftovers;
        CHECK(p.kind != ProblemKind::OrphanBlob);
    }
    CHECK(leftovers == 4);
}

TEST_CASE("orphan blobs, absolute symlinks and refs to missing snapshots are reported") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    std::string orphan = repo.blob("nobody points here", false);
    std::string etag = repo.blob("absolute", false);
    fs::create_symlink(repo.dir / "blobs" / etag, repo.dir / "snapshots" / kCommit / "abs.txt");
    repo.ref("dev", kOtherCommit);

    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name")));
    const Problem* orphanProblem = findProblem(scan, ProblemKind::OrphanBlob);
    REQUIRE(orphanProblem != nullptr);
    CHECK(orphanProblem->path == repo.dir / "blobs" / orphan);
    const Problem* absolute = findProblem(scan, ProblemKind::AbsoluteSymlink);
    REQUIRE(absolute != nullptr);
    CHECK(absolute->path == repo.dir / "snapshots" / kCommit / "abs.txt");
    const Problem* missing = findProblem(scan, ProblemKind::RefMissingSnapshot);
    REQUIRE(missing != nullptr);
    CHECK(missing->path == repo.dir / "refs/dev");
    CHECK(missing->message.find(kOtherCommit) != std::string::npos);
    // The entry's own ref is fine, so it is still ready.
    CHECK(scan.state == EntryState::Ready);

    auto dev = scanEntry(tmp.path, entryFor(repoRef("org/name", "dev")));
    CHECK(dev.state == EntryState::Missing);
    CHECK(dev.commit == kOtherCommit);
}

TEST_CASE("a cache written without refs, as @huggingface/hub's downloadFileToCacheDir does, is partial") {
    TempDir tmp;
    HfRepo repo{tmp.path / "models--org--name"};
    repo.file(kCommit, "config.json", "{}");
    auto single = scanEntry(tmp.path, entryFor(repoRef("org/name"), {"config.json"}));
    CHECK(single.state == EntryState::Partial);
    CHECK(single.commit == kCommit);
    CHECK(single.filesPresent == 1);
    CHECK(hasProblem(single, ProblemKind::RefMissing));

    // Each file under the snapshot of its own last commit.
    repo.file(kOtherCommit, "model.bin", "weights", true);
    auto spread = scanEntry(tmp.path, entryFor(repoRef("org/name"), {"config.json", "model.bin"}));
    CHECK(spread.state == EntryState::Partial);
    CHECK_FALSE(spread.commit.has_value());
    CHECK(spread.filesPresent == 2);
    CHECK(hasProblem(spread, ProblemKind::RefMissing));
}

TEST_CASE("a sha-pinned entry resolves without refs and notes the ref hf-hub 0.x needs") {
    TempDir tmp;
    HfRepo repo{tmp.path / "models--org--name"};
    repo.file(kCommit, "config.json", "{}");
    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name", kCommit), {"config.json"}));
    CHECK(scan.state == EntryState::Ready);
    CHECK(scan.commit == kCommit);
    CHECK(hasProblem(scan, ProblemKind::ShaRefMissing));

    repo.ref(kCommit, kCommit);
    auto withRef = scanEntry(tmp.path, entryFor(repoRef("org/name", kCommit), {"config.json"}));
    CHECK(withRef.state == EntryState::Ready);
    CHECK(withRef.problems.empty());

    auto other = scanEntry(tmp.path, entryFor(repoRef("org/name", kOtherCommit), {"config.json"}));
    CHECK(other.state == EntryState::Missing);
}

TEST_CASE("a wanted file with a no_exist marker is known absent and keeps the entry from being ready") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    writeFile(repo.dir / ".no_exist" / kCommit / "missing.gguf", "");
    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name"), {"config.json", "missing.gguf"}));
    CHECK(scan.state == EntryState::Partial);
    CHECK(scan.knownAbsent == std::vector<std::string>{"missing.gguf"});
    CHECK(hasProblem(scan, ProblemKind::KnownAbsent));
}

TEST_CASE("a repo that is not in the cache is missing with its wanted files listed") {
    TempDir tmp;
    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/absent"), {"b.bin", "a.json"}));
    CHECK(scan.state == EntryState::Missing);
    CHECK(scan.filesExpected == 2);
    CHECK(scan.missingFiles == std::vector<std::string>{"a.json", "b.bin"});
    CHECK(scan.repoDir == tmp.path / "models--org--absent");
    CHECK(scanEntry(tmp.path, entryFor(repoRef("org/absent"))).state == EntryState::Missing);
}

TEST_CASE("an unreadable tree listing is reported and the scan falls back to the snapshot") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    writeFile(repo.dir / "trees" / (kCommit + ".json"), "{\"format_version\": 2, \"files\": {}}");
    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name")));
    CHECK(hasProblem(scan, ProblemKind::TreeUnreadable));
    CHECK(scan.expectedFrom == ExpectedSource::Snapshot);
    CHECK(scan.state == EntryState::Ready);
}

TEST_CASE("what the write side produces scans as ready with no problems") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    REQUIRE(prepareRepo(layout).has_value());
    std::vector<TreeFile> listing;
    for (const auto& [path, content] : std::vector<std::pair<std::string, std::string>>{
             {"config.json", "{}"}, {"1_Pooling/config.json", "{\"x\": 1}"}, {"model.safetensors", "w"}}) {
        const bool lfs = path.ends_with(".safetensors");
        const std::string etag = lfs ? util::sha256Hex(content) : util::gitBlobSha1Hex(content);
        writeFile(layout.incompleteBlob(etag).value(), content);
        REQUIRE(verifyBlob(layout.incompleteBlob(etag).value(), etag, content.size()).has_value());
        REQUIRE(publishBlob(layout.root(), layout.incompleteBlob(etag).value(), layout.blob(etag).value())
                    .has_value());
        REQUIRE(linkSnapshot(layout, kCommit, path, etag).has_value());
        TreeFile file{path, content.size(), util::gitBlobSha1Hex(content), {}, {}, {}};
        if (lfs) {
            file.lfsSha256 = etag;
            file.lfsSize = content.size();
        }
        listing.push_back(file);
    }
    REQUIRE(writeTree(layout, kCommit, listing).has_value());
    REQUIRE(writeRef(layout, "main", kCommit).has_value());
    REQUIRE(writeCachedirTag(tmp.path).has_value());

    auto scan = scanEntry(tmp.path, entryFor(repoRef("org/name")));
    CHECK(scan.state == EntryState::Ready);
    CHECK(scan.expectedFrom == ExpectedSource::Tree);
    CHECK(scan.filesPresent == 3);
    CHECK(scan.bytesPresent == *scan.bytesExpected);
    CHECK(scan.problems.empty());
}

// ---------------------------------------------------------------------------------------------
// Lookup

TEST_CASE("lookup follows try_to_load_from_cache") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    writeFile(repo.dir / ".no_exist" / kCommit / "absent.txt", "");

    auto cached = lookup(tmp.path, repoRef("org/name"), "1_Pooling/config.json").value();
    CHECK(cached.state == LookupState::Cached);
    CHECK(cached.path == repo.dir / "snapshots" / kCommit / "1_Pooling/config.json");
    CHECK(cached.commit == kCommit);
    CHECK(lookupStateName(cached.state) == "cached");

    CHECK(lookup(tmp.path, repoRef("org/name"), "absent.txt").value().state == LookupState::Absent);
    CHECK(lookup(tmp.path, repoRef("org/name"), "other.txt").value().state == LookupState::Unknown);
    CHECK(lookup(tmp.path, repoRef("org/unknown"), "config.json").value().state == LookupState::Unknown);
    CHECK(lookup(tmp.path, repoRef("org/name", "dev"), "config.json").value().state == LookupState::Unknown);
    CHECK(lookup(tmp.path, repoRef("org/name", kCommit), "config.json").value().state == LookupState::Cached);

    // Python reads the ref raw: a newline makes the lookup miss.
    repo.ref("main", kCommit + "\n");
    CHECK(lookup(tmp.path, repoRef("org/name"), "config.json").value().state == LookupState::Unknown);

    // A broken pointer is not a cached file.
    repo.ref("main", kCommit);
    fs::remove(repo.dir / "blobs" / util::sha256Hex("weights-weights"));
    CHECK(lookup(tmp.path, repoRef("org/name"), "model.safetensors").value().state == LookupState::Unknown);

    CHECK_FALSE(lookup(tmp.path, repoRef("org/name"), "../../../etc/passwd").has_value());
    CHECK_FALSE(lookup(tmp.path, repoRef("org/name", "../x"), "config.json").has_value());
}

TEST_CASE("refs and snapshot links are written without leaving temp names where clients list files") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    REQUIRE(prepareRepo(layout).has_value());
    REQUIRE(writeRef(layout, "main", kCommit).has_value());
    REQUIRE(writeRef(layout, "main", std::string(40, 'b')).has_value());
    REQUIRE(linkSnapshot(layout, kCommit, "config.json", std::string(40, 'a')).has_value());
    REQUIRE(linkSnapshot(layout, kCommit, "config.json", std::string(40, 'c')).has_value());
    std::vector<std::string> names;
    for (const auto& item : fs::recursive_directory_iterator(layout.repoDir()))
        names.push_back(fs::relative(item.path(), layout.repoDir()).string());
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"blobs", "refs", "refs/main", "snapshots", "snapshots/" + kCommit,
                                            "snapshots/" + kCommit + "/config.json"});
}

TEST_CASE("a temp name a killed writer left in the repo folder is removed once it is old") {
    TempDir tmp;
    RepoLayout layout(tmp.path, repoRef("org/name"));
    REQUIRE(prepareRepo(layout).has_value());
    const fs::path old = layout.repoDir() / ".hfwarm-0123456789abcdef.tmp";
    const fs::path fresh = layout.repoDir() / ".hfwarm-fedcba9876543210.tmp";
    const fs::path other = layout.repoDir() / "notes.tmp";
    for (const auto& path : {old, fresh, other}) std::ofstream(path) << std::string(40, 'a');
    fs::last_write_time(old, fs::file_time_type::clock::now() - std::chrono::hours(1));
    fs::last_write_time(other, fs::file_time_type::clock::now() - std::chrono::hours(1));

    REQUIRE(prepareRepo(layout).has_value());
    CHECK_FALSE(fs::exists(old));
    CHECK(fs::exists(fresh));  // may belong to a writer still at work
    CHECK(fs::exists(other));  // not a name hfwarm makes
}

// ---------------------------------------------------------------------------------------------
// Verify and prune

TEST_CASE("verify hashes the blob of every pointer and names the pointer whose blob does not match") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    const manifest::Manifest manifest{{entryFor(repoRef("org/name")), entryFor(repoRef("org/absent"))}};
    auto jobs = verifyJobs(manifest, tmp.path);
    REQUIRE(jobs.size() == 1);  // org/absent is not in the cache
    CHECK(jobs[0].repo == "org/name");
    CHECK(jobs[0].snapshot == repo.dir / "snapshots" / kCommit);

    auto clean = verifySnapshots(jobs);
    CHECK(clean.filesChecked == 3);
    CHECK(clean.bytesChecked == std::string("{\"a\": 1}weights-weights{\"pooling\": true}").size());
    CHECK(clean.problems.empty());

    // Same size, other bytes: only the hash can tell.
    writeFile(repo.dir / "blobs" / util::sha256Hex("weights-weights"), "weights-WEIGHTS");
    auto corrupt = verifySnapshots(jobs);
    CHECK(corrupt.filesChecked == 3);
    REQUIRE(corrupt.problems.size() == 1);
    CHECK(corrupt.problems[0].repo == "org/name");
    CHECK(corrupt.problems[0].path == "model.safetensors");
    CHECK_FALSE(corrupt.problems[0].problem.empty());
}

TEST_CASE(
    "prune lists unused blobs and unlocked partial downloads of the manifest's repos, and removes "
    "them only when applied") {
    TempDir tmp;
    HfRepo repo = completeRepo(tmp.path);
    const std::string orphan = repo.blob("nobody points here", false);
    const std::string stale(64, '7');
    const std::string held(64, '8');
    writeFile(repo.dir / "blobs" / (stale + ".incomplete"), "half");
    writeFile(repo.dir / "blobs" / (held + ".incomplete"), "half, still downloading");
    HfRepo other{tmp.path / "models--org--other"};
    const std::string othersOrphan = other.blob("not in the manifest", false);
    RepoLayout layout(tmp.path, repoRef("org/name"));
    auto lock = BlobLock::tryAcquire(tmp.path, layout.lockFile(held).value());
    REQUIRE(lock.has_value());
    REQUIRE(lock->has_value());
    const manifest::Manifest manifest{{entryFor(repoRef("org/name"))}};

    auto listed = prune(manifest, tmp.path, false);
    CHECK_FALSE(listed.applied);
    std::vector<std::pair<fs::path, std::string>> items;
    for (const auto& item : listed.items) items.emplace_back(item.path, item.reason);
    std::sort(items.begin(), items.end());
    std::vector<std::pair<fs::path, std::string>> expected{
        {repo.dir / "blobs" / orphan, "blob no snapshot uses"},
        {repo.dir / "blobs" / (stale + ".incomplete"), "stale partial download"}};
    std::sort(expected.begin(), expected.end());
    CHECK(items == expected);
    CHECK(listed.bytes == std::string("nobody points here").size() + std::string("half").size());
    CHECK(fs::exists(repo.dir / "blobs" / orphan));
    CHECK(fs::exists(repo.dir / "blobs" / (stale + ".incomplete")));

    auto applied = prune(manifest, tmp.path, true);
    CHECK(applied.applied);
    CHECK(applied.items.size() == 2);
    CHECK(applied.bytes == listed.bytes);
    CHECK_FALSE(fs::exists(repo.dir / "blobs" / orphan));
    CHECK_FALSE(fs::exists(repo.dir / "blobs" / (stale + ".incomplete")));
    CHECK(readFile(repo.dir / "blobs" / (held + ".incomplete")) == "half, still downloading");
    CHECK(fs::exists(other.dir / "blobs" / othersOrphan));
    CHECK(scanEntry(tmp.path, entryFor(repoRef("org/name"))).state == EntryState::Ready);
    CHECK(prune(manifest, tmp.path, true).items.empty());
}
