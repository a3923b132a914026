#include "repo_store.hpp"

#include "hfwarm/util/hash.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace hfwarm::hubsim {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSettingsFile = ".hubsim.json";
constexpr std::string_view kExtraTreesDir = ".hubsim";
// A fixed date: the fixtures have no history, and the listings must not change between runs.
constexpr std::string_view kCommitDate = "2024-01-01T00:00:00.000Z";

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string typeKey(RepoType type, std::string_view id) {
    return fmt::format("{}:{}", type == RepoType::Model ? "model" : "dataset", id);
}

std::string lfsPointer(const FileEntry& f) {
    return fmt::format("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n", f.sha256,
                       f.size);
}

// Files below `dir`, without the settings file and the folder of extra trees at the repo root.
std::vector<FileEntry> collectFiles(const fs::path& dir) {
    std::vector<FileEntry> files;
    for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
        const fs::path rel = it->path().lexically_relative(dir);
        if (it.depth() == 0 && (rel == kSettingsFile || rel == kExtraTreesDir || rel == ".git")) {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;
        }
        if (!it->is_regular_file()) continue;
        FileEntry f;
        f.path = rel.generic_string();
        f.diskPath = it->path();
        f.size = it->file_size();
        files.push_back(std::move(f));
    }
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
    return files;
}

// Hashes what each file needs (sha256 for LFS files, the git blob sha1 otherwise) on all cores; an LFS
// file whose sha256 the settings give (`lfs_sha256`) is not read.
void hashFiles(const std::vector<FileEntry*>& files, std::uint64_t lfsThreshold) {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::string failure;
    auto work = [&] {
        for (std::size_t i = next++; i < files.size() && !failed; i = next++) {
            FileEntry& f = *files[i];
            try {
                if (f.size > lfsThreshold) {
                    if (f.sha256.empty()) f.sha256 = util::hashFileHex(f.diskPath, util::HashKind::Sha256);
                    const std::string pointer = lfsPointer(f);
                    f.pointerSize = pointer.size();
                    f.blobId = util::gitBlobSha1Hex(pointer);
                } else {
                    f.blobId = util::hashFileHex(f.diskPath, util::HashKind::Sha1, true);
                }
            } catch (const std::exception& e) {
                if (!failed.exchange(true))
                    failure = fmt::format("cannot read {}: {}", f.diskPath.string(), e.what());
            }
        }
    };
    std::vector<std::thread> threads;
    const unsigned count = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
    for (unsigned i = 0; i < count; ++i) threads.emplace_back(work);
    for (auto& t : threads) t.join();
    if (failed) throw std::runtime_error(failure);
}

// Commit and directory ids: sha1 over the sorted (path, blob id) pairs, like a git tree.
void computeIds(Tree& tree, std::string_view repoKey) {
    util::Hasher commit(util::HashKind::Sha1);
    commit.update(fmt::format("hubsim commit {}\n", repoKey));
    std::map<std::string, util::Hasher> dirs;
    for (const auto& f : tree.files) {
        const std::string line = fmt::format("{} {}\n", f.path, f.blobId);
        commit.update(line);
        for (auto slash = f.path.find('/'); slash != std::string::npos; slash = f.path.find('/', slash + 1)) {
            auto [it, inserted] = dirs.try_emplace(f.path.substr(0, slash), util::HashKind::Sha1);
            it->second.update(line);
        }
    }
    tree.commit = commit.finishHex();
    for (auto& [dir, hasher] : dirs) tree.dirOids[dir] = hasher.finishHex();
}

bool isSha256Hex(std::string_view s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// `lfs_sha256`: path -> sha256 of LFS files of the main tree, taken as given instead of hashed at
// start (a sparse fixture of 60 GiB would take a minute to hash). Nothing checks the value: a wrong
// one makes the simulator serve bytes that fail the client's hash check.
void presetSha256(Tree& main, const nlohmann::json& value, const fs::path& settingsFile,
                  std::uint64_t lfsThreshold) {
    for (const auto& [path, sha] : value.items()) {
        auto it =
            std::find_if(main.files.begin(), main.files.end(), [&](const auto& f) { return f.path == path; });
        if (it == main.files.end())
            throw std::runtime_error(
                fmt::format("{}: lfs_sha256 names '{}', which is not a file of the main tree",
                            settingsFile.string(), path));
        if (it->size <= lfsThreshold)
            throw std::runtime_error(fmt::format(
                "{}: lfs_sha256 names '{}', which is not an LFS file ({} bytes, --lfs-threshold {})",
                settingsFile.string(), path, it->size, lfsThreshold));
        if (!sha.is_string() || !isSha256Hex(sha.get<std::string>()))
            throw std::runtime_error(fmt::format("{}: lfs_sha256.{} must be 64 lower-case hex digits",
                                                 settingsFile.string(), path));
        it->sha256 = sha.get<std::string>();
    }
}

nlohmann::json readSettings(const fs::path& file) {
    std::ifstream in(file);
    auto settings = nlohmann::json::parse(in, nullptr, false, true);
    if (settings.is_discarded() || !settings.is_object())
        throw std::runtime_error(fmt::format("{}: not a JSON object", file.string()));
    return settings;
}

}  // namespace

const FileEntry* Tree::file(std::string_view path) const {
    auto it = std::lower_bound(files.begin(), files.end(), path,
                               [](const FileEntry& f, std::string_view p) { return f.path < p; });
    return it != files.end() && it->path == path ? &*it : nullptr;
}

std::vector<TreeItem> Tree::list(std::string_view dir, bool recursive) const {
    const std::string prefix = dir.empty() ? "" : std::string(dir) + "/";
    auto below = [&](const std::string& path) {
        if (!path.starts_with(prefix)) return false;
        return recursive || path.find('/', prefix.size()) == std::string::npos;
    };
    std::vector<TreeItem> items;
    for (const auto& [path, oid] : dirOids)
        if (below(path)) items.push_back({path, oid, nullptr});
    for (const auto& f : files)
        if (below(f.path)) items.push_back({f.path, f.blobId, &f});
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
    return items;
}

std::uint64_t Tree::totalSize() const {
    std::uint64_t total = 0;
    for (const auto& f : files) total += f.size;
    return total;
}

const Tree* Repo::resolve(std::string_view revision) const {
    if (auto it = refs.find(revision); it != refs.end()) return it->second.get();
    for (const auto& [name, tree] : refs)
        if (tree->commit == revision) return tree.get();
    return nullptr;
}

RepoStore RepoStore::load(const fs::path& fixtures, std::uint64_t lfsThreshold) {
    if (!fs::is_directory(fixtures))
        throw std::runtime_error(fmt::format(
            "fixture folder {} does not exist: create it with `hfwarm-hubsim gen`", fixtures.string()));
    RepoStore store;
    auto isRepoDir = [](const fs::path& dir) {
        for (const auto& e : fs::directory_iterator(dir))
            if (e.is_regular_file()) return true;
        return false;
    };
    auto addRepo = [&](RepoType type, const fs::path& dir, std::string id) {
        auto repo = std::make_unique<Repo>();
        repo->type = type;
        repo->id = std::move(id);
        repo->dir = dir;
        store.repos_.push_back(std::move(repo));
    };
    // A top-level folder holding files is a legacy single-name repo, otherwise an owner.
    auto scanLevel = [&](RepoType type, const fs::path& root) {
        if (!fs::is_directory(root)) return;
        for (const auto& top : fs::directory_iterator(root)) {
            const std::string name = top.path().filename().string();
            if (!top.is_directory() || name.starts_with('.') ||
                (type == RepoType::Model && name == "datasets"))
                continue;
            if (isRepoDir(top.path())) {
                addRepo(type, top.path(), name);
                continue;
            }
            for (const auto& sub : fs::directory_iterator(top.path()))
                if (sub.is_directory() && !sub.path().filename().string().starts_with('.'))
                    addRepo(type, sub.path(), name + "/" + sub.path().filename().string());
        }
    };
    scanLevel(RepoType::Model, fixtures);
    scanLevel(RepoType::Dataset, fixtures / "datasets");

    // Trees first (files listed), then hash every file at once, then commits.
    std::vector<std::pair<Repo*, std::shared_ptr<Tree>>> trees;
    std::vector<FileEntry*> toHash;
    for (auto& repo : store.repos_) {
        std::map<std::string, std::shared_ptr<Tree>> byDir;
        auto treeOf = [&](const std::string& sub) {
            auto& tree = byDir[sub];
            if (!tree) {
                const fs::path dir = sub.empty() || sub == "." ? repo->dir : repo->dir / sub;
                if (!fs::is_directory(dir))
                    throw std::runtime_error(fmt::format("{}: tree folder '{}' does not exist",
                                                         (repo->dir / kSettingsFile).string(), sub));
                tree = std::make_shared<Tree>();
                tree->files = collectFiles(dir);
                for (auto& f : tree->files) toHash.push_back(&f);
                trees.emplace_back(repo.get(), tree);
            }
            return tree;
        };
        repo->refs["main"] = treeOf("");
        const fs::path settingsFile = repo->dir / kSettingsFile;
        if (!fs::exists(settingsFile)) continue;
        const auto settings = readSettings(settingsFile);
        for (const auto& [key, value] : settings.items()) {
            if (key == "gated" && value.is_boolean()) {
                repo->gated = value.get<bool>();
            } else if (key == "renamed_to" && value.is_string()) {
                repo->renamedTo = value.get<std::string>();
            } else if (key == "lfs_sha256" && value.is_object()) {
                presetSha256(*treeOf(""), value, settingsFile, lfsThreshold);
            } else if ((key == "branches" || key == "tags") && value.is_object()) {
                for (const auto& [ref, sub] : value.items()) {
                    if (!sub.is_string())
                        throw std::runtime_error(
                            fmt::format("{}: {}.{} must be a folder name", settingsFile.string(), key, ref));
                    repo->refs[ref] = treeOf(sub.get<std::string>());
                }
            } else {
                throw std::runtime_error(fmt::format(
                    "{}: unknown key or wrong type for '{}' (expected branches, tags, gated, renamed_to, "
                    "lfs_sha256)",
                    settingsFile.string(), key));
            }
        }
    }
    hashFiles(toHash, lfsThreshold);
    for (auto& [repo, tree] : trees) computeIds(*tree, typeKey(repo->type, repo->id));

    for (const auto& repo : store.repos_) {
        const std::string key = typeKey(repo->type, repo->id);
        store.byKey_[key] = repo.get();
        store.byLowerKey_[lower(key)] = repo.get();
        for (const auto& [ref, tree] : repo->refs)
            for (const auto& f : tree->files)
                if (f.lfs()) store.lfsBlobs_.emplace(f.sha256, &f);
    }
    return store;
}

const Repo* RepoStore::find(RepoType type, std::string_view id) const {
    auto it = byKey_.find(typeKey(type, id));
    return it == byKey_.end() ? nullptr : it->second;
}

const Repo* RepoStore::findIgnoringCase(RepoType type, std::string_view id) const {
    auto it = byLowerKey_.find(lower(typeKey(type, id)));
    return it == byLowerKey_.end() ? nullptr : it->second;
}

const FileEntry* RepoStore::lfsBlob(std::string_view sha256) const {
    auto it = lfsBlobs_.find(sha256);
    return it == lfsBlobs_.end() ? nullptr : it->second;
}

nlohmann::json treeItemJson(const TreeItem& item, const Tree& tree, bool expand) {
    nlohmann::json j;
    if (item.file == nullptr) {
        j = {{"type", "directory"}, {"oid", item.oid}, {"size", 0}, {"path", item.path}};
    } else {
        const FileEntry& f = *item.file;
        j = {{"type", "file"}, {"oid", f.blobId}, {"size", f.size}, {"path", f.path}};
        if (f.lfs()) j["lfs"] = {{"oid", f.sha256}, {"size", f.size}, {"pointerSize", f.pointerSize}};
    }
    if (expand) {
        // The fixtures have one commit per tree, so it is the last commit of every file.
        j["lastCommit"] = {{"id", tree.commit}, {"title", "Fixture commit"}, {"date", kCommitDate}};
        if (item.file != nullptr) j["securityFileStatus"] = {{"status", "safe"}};
    }
    return j;
}

nlohmann::json repoInfoJson(const Repo& repo, const Tree& tree, bool blobs) {
    const auto slash = repo.id.find('/');
    nlohmann::json siblings = nlohmann::json::array();
    for (const auto& f : tree.files) {
        nlohmann::json s = {{"rfilename", f.path}};
        if (blobs) {
            s["size"] = f.size;
            s["blobId"] = f.blobId;
            if (f.lfs()) s["lfs"] = {{"sha256", f.sha256}, {"size", f.size}, {"pointerSize", f.pointerSize}};
        }
        siblings.push_back(std::move(s));
    }
    nlohmann::json j = {
        {"_id", tree.commit.substr(0, 24)},
        {"id", repo.id},
        {"author", slash == std::string::npos ? repo.id : repo.id.substr(0, slash)},
        {"sha", tree.commit},
        {"lastModified", kCommitDate},
        {"createdAt", kCommitDate},
        {"private", false},
        {"gated", repo.gated ? nlohmann::json("auto") : nlohmann::json(false)},
        {"disabled", false},
        {"downloads", 0},
        {"likes", 0},
        {"tags", nlohmann::json::array()},
        {"siblings", std::move(siblings)},
        {"usedStorage", tree.totalSize()},
    };
    if (repo.type == RepoType::Model) j["modelId"] = repo.id;
    return j;
}

nlohmann::json hostileEntriesJson(bool asSiblings) {
    static const std::vector<std::string> names = {
        "../x", "/abs", "a/../../b", "dir\\evil.bin", std::string("nul\0byte", 8), "ctrl\x01\x1b[31mname",
        "./.",  "a//b"};
    nlohmann::json out = nlohmann::json::array();
    for (const auto& name : names) {
        const std::string oid = util::gitBlobSha1Hex(name);
        if (asSiblings)
            out.push_back({{"rfilename", name}, {"size", name.size()}, {"blobId", oid}});
        else
            out.push_back({{"type", "file"}, {"oid", oid}, {"size", name.size()}, {"path", name}});
    }
    return out;
}

}  // namespace hfwarm::hubsim
