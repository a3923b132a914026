#include "hfwarm/cache/scan.hpp"

#include "hfwarm/cache/paths.hpp"
#include "hfwarm/cache/safe_io.hpp"
#include "hfwarm/cache/tree.hpp"
#include "hfwarm/util/units.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

namespace hfwarm::cache {

namespace fs = std::filesystem;

std::string_view stateName(EntryState state) {
    switch (state) {
        case EntryState::Ready:
            return "ready";
        case EntryState::Partial:
            return "partial";
        case EntryState::Missing:
            return "missing";
    }
    return "missing";
}

std::string_view lookupStateName(LookupState state) {
    switch (state) {
        case LookupState::Cached:
            return "cached";
        case LookupState::Absent:
            return "absent";
        case LookupState::Unknown:
            return "unknown";
    }
    return "unknown";
}

namespace {

std::string rstripWhitespace(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t' ||
                          s.back() == '\v' || s.back() == '\f'))
        s.pop_back();
    return s;
}

// A ref holds 40 hex digits; anything much longer is not one.
constexpr std::uint64_t kMaxRefBytes = 4096;

// What lookup may hand out: a regular file, or a symlink to a regular file in the repo's blobs/,
// reached without following any other symlink inside the cache.
bool servedFile(const RepoLayout& layout, const fs::path& path) {
    auto dir = openCacheDir(layout.root(), path.parent_path(), false);
    if (!dir) return false;
    const std::string leaf = path.filename().string();
    struct stat st {};
    if (::fstatat(dir->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    if (S_ISREG(st.st_mode)) return true;
    if (!S_ISLNK(st.st_mode)) return false;
    std::error_code ec;
    const fs::path blob = (path.parent_path() / fs::read_symlink(path, ec)).lexically_normal();
    if (ec || blob.parent_path() != layout.blobsDir().lexically_normal()) return false;
    auto blobs = openCacheDir(layout.root(), blob.parent_path(), false);
    return blobs && ::fstatat(blobs->get(), blob.filename().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st.st_mode);
}

bool isFileAt(const fs::path& path) {
    std::error_code ec;
    return fs::is_regular_file(path, ec);
}

// One file of a snapshot folder, as a reader would see it.
struct Pointer {
    bool present = false;  // resolves to a regular file
    std::uint64_t size = 0;
};

// Everything the scanner learns about one repo folder, independent of the entry's selection.
struct RepoFacts {
    std::set<std::string> snapshots;                              // commit folders in snapshots/
    std::map<std::string, std::map<std::string, Pointer>> files;  // commit -> path -> pointer
    std::set<std::string> referencedBlobs;
};

void addProblem(std::vector<Problem>& problems, ProblemKind kind, fs::path path, std::string message) {
    problems.push_back(Problem{kind, std::move(path), std::move(message)});
}

void walkSnapshot(const RepoLayout& layout, const fs::path& blobsReal, const std::string& commit,
                  RepoFacts& facts, std::vector<Problem>& problems) {
    const fs::path dir = layout.snapshotsDir() / commit;
    auto& files = facts.files[commit];
    std::error_code ec;
    fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
    if (ec) {
        addProblem(problems, ProblemKind::Unreadable, dir,
                   "cannot read " + dir.string() + ": " + ec.message());
        return;
    }
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const fs::directory_entry& item = *it;
        std::error_code itemEc;
        fs::file_status own = item.symlink_status(itemEc);
        if (fs::is_directory(own)) continue;
        const std::string rel = item.path().lexically_relative(dir).generic_string();
        Pointer pointer;
        if (fs::is_symlink(own)) {
            fs::path target = fs::read_symlink(item.path(), itemEc);
            if (!itemEc && target.is_absolute())
                addProblem(problems, ProblemKind::AbsoluteSymlink, item.path(),
                           item.path().string() + " points to the absolute path " + target.string() +
                               ": it breaks when the cache is moved or restored elsewhere");
            fs::file_status resolved = fs::status(item.path(), itemEc);
            // A symlink to a folder is not a file of the repo; nothing the Hub's clients write.
            if (!itemEc && fs::is_directory(resolved)) continue;
            if (itemEc || !fs::is_regular_file(resolved)) {
                addProblem(
                    problems, ProblemKind::BrokenSymlink, item.path(),
                    item.path().string() + " is a broken symlink (its blob " + target.string() +
                        " is missing): huggingface_hub's scan_cache_dir reports the repo as corrupted");
            } else if (const fs::path blob = (item.path().parent_path() / target).lexically_normal();
                       fs::is_symlink(fs::symlink_status(blob, itemEc))) {
                addProblem(problems, ProblemKind::SymlinkInCache, blob,
                           blob.string() +
                               " is a symlink, not a blob: hfwarm does not serve it; remove it "
                               "and warm the repo again");
            } else {
                pointer.present = true;
                pointer.size = fs::file_size(item.path(), itemEc);
                fs::path real = fs::canonical(item.path(), itemEc);
                if (!itemEc && real.parent_path() == blobsReal)
                    facts.referencedBlobs.insert(real.filename().string());
                else
                    addProblem(problems, ProblemKind::PointerOutsideBlobs, item.path(),
                               item.path().string() + " points outside " + layout.blobsDir().string());
            }
        } else if (fs::is_regular_file(own)) {
            // A copy instead of a pointer: what huggingface_hub writes where symlinks are unsupported.
            pointer.present = true;
            pointer.size = fs::file_size(item.path(), itemEc);
        } else {
            continue;
        }
        files[rel] = pointer;
    }
    if (ec)
        addProblem(problems, ProblemKind::Unreadable, dir,
                   "cannot read all of " + dir.string() + ": " + ec.message());
}

void inspectBlobs(const RepoLayout& layout, const RepoFacts& facts, std::vector<Problem>& problems) {
    std::error_code ec;
    fs::directory_iterator it(layout.blobsDir(), ec);
    if (ec) return;  // no blobs/ at all: nothing to report (the snapshot walk says what is missing)
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        const fs::path& path = it->path();
        const std::string name = path.filename().string();
        std::error_code itemEc;
        auto ends = [&](std::string_view suffix) {
            return name.size() > suffix.size() &&
                   name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
        };
        // hf-hub 0.x locks beside the blob; it never removes the file.
        if (ends(".lock")) continue;
        if (ends(".incomplete") || ends(".part")) {
            std::uint64_t size = fs::file_size(path, itemEc);
            std::string writer = ends(".sync.part") ? "hf-hub's async API"
                                 : ends(".part")    ? "hf-hub's sync API"
                                                    : "an interrupted download";
            addProblem(problems, ProblemKind::IncompleteLeftover, path,
                       path.string() + " (" + util::humanBytes(itemEc ? 0 : size) +
                           ") is a partial file left by " + writer);
            continue;
        }
        if (!fs::is_regular_file(it->symlink_status(itemEc))) continue;
        if (!facts.referencedBlobs.contains(name))
            addProblem(problems, ProblemKind::OrphanBlob, path,
                       path.string() + " is not referenced by any snapshot (" +
                           util::humanBytes(fs::file_size(path, itemEc)) + " reclaimable)");
    }
}

// Every file under refs/, by its revision name ("main", "refs/pr/1"), with its raw content.
std::map<std::string, std::string> readRefs(const RepoLayout& layout, std::vector<Problem>& problems) {
    std::map<std::string, std::string> refs;
    std::error_code ec;
    const fs::path dir = layout.refsDir();
    fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
    if (ec) return refs;
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::error_code itemEc;
        if (!fs::is_regular_file(it->symlink_status(itemEc))) continue;
        const std::string name = it->path().lexically_relative(dir).generic_string();
        // Our own temp files, only present if a write was interrupted mid-way.
        if (it->path().filename().string().starts_with(".hfwarm-")) continue;
        auto content = readCacheFile(layout.root(), it->path(), kMaxRefBytes);
        if (!content || !*content) {
            addProblem(problems, ProblemKind::Unreadable, it->path(),
                       content ? "cannot read " + it->path().string() : content.error().message);
            continue;
        }
        refs[name] = **content;
    }
    return refs;
}

void checkRefs(const RepoLayout& layout, const std::map<std::string, std::string>& refs,
               const RepoFacts& facts, std::vector<Problem>& problems) {
    for (const auto& [name, content] : refs) {
        const fs::path path = layout.refsDir() / name;
        const std::string stripped = rstripWhitespace(content);
        if (stripped != content) {
            addProblem(problems, ProblemKind::RefWhitespace, path,
                       path.string() +
                           " ends with whitespace or a newline: huggingface_hub and hf-hub read it "
                           "raw, so offline lookups of '" +
                           name + "' fail; it must hold exactly the 40-hex commit");
        } else if (!isCommitSha(stripped)) {
            addProblem(problems, ProblemKind::RefInvalid, path,
                       path.string() + " does not hold a 40-hex commit: " + quoteName(content));
        } else if (!facts.snapshots.contains(stripped)) {
            addProblem(problems, ProblemKind::RefMissingSnapshot, path,
                       path.string() + " names " + stripped + " but snapshots/" + stripped +
                           " does not exist: huggingface_hub's scan_cache_dir reports the repo as corrupted");
        }
    }
}

}  // namespace

EntryScan scanEntry(const fs::path& root, const manifest::Entry& entry) {
    const RepoLayout layout(root, entry.repo);
    EntryScan scan;
    scan.repoDir = layout.repoDir();
    auto& problems = scan.problems;
    const std::string& revision = entry.repo.revision;

    std::vector<std::string> wanted;  // file: entries that the selection keeps
    for (const std::string& file : entry.namedFiles())
        if (entry.selects(file)) wanted.push_back(file);

    std::error_code ec;
    for (const fs::path& dir :
         {layout.repoDir(), layout.blobsDir(), layout.snapshotsDir(), layout.refsDir()}) {
        if (!fs::is_symlink(fs::symlink_status(dir, ec))) continue;
        addProblem(problems, ProblemKind::SymlinkInCache, dir,
                   dir.string() +
                       " is a symlink: hfwarm neither follows nor writes through it; replace it "
                       "with a real folder (or remove it) and warm again");
        scan.filesExpected = wanted.size();
        scan.missingFiles = wanted;
        std::sort(scan.missingFiles.begin(), scan.missingFiles.end());
        return scan;
    }
    if (!fs::is_directory(layout.repoDir(), ec)) {
        scan.expectedFrom =
            wanted.empty() || !entry.onlyNamedFiles() ? ExpectedSource::Snapshot : ExpectedSource::FileList;
        scan.filesExpected = wanted.size();
        scan.missingFiles = wanted;
        std::sort(scan.missingFiles.begin(), scan.missingFiles.end());
        if (isCommitSha(revision)) scan.commit = revision;
        return scan;
    }

    RepoFacts facts;
    {
        fs::directory_iterator it(layout.snapshotsDir(), ec);
        for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
            std::error_code itemEc;
            if (fs::is_directory(it->symlink_status(itemEc)))
                facts.snapshots.insert(it->path().filename().string());
        }
    }
    std::error_code blobsEc;
    const fs::path blobsReal = fs::canonical(layout.blobsDir(), blobsEc);
    for (const std::string& commit : facts.snapshots)
        walkSnapshot(layout, blobsReal, commit, facts, problems);
    inspectBlobs(layout, facts, problems);
    const auto refs = readRefs(layout, problems);
    checkRefs(layout, refs, facts, problems);

    // Which commit the entry's revision resolves to, and whether readers can resolve it offline.
    bool resolvable = false;
    bool unionOfSnapshots = false;
    if (isCommitSha(revision)) {
        scan.commit = revision;
        resolvable = facts.snapshots.contains(revision);
        if (resolvable && !refs.contains(revision))
            addProblem(problems, ProblemKind::ShaRefMissing, layout.refsDir() / revision,
                       "refs/" + revision +
                           " is missing: hf-hub 0.x (Candle) looks sha-pinned revisions up through it and "
                           "will not find this snapshot offline");
    } else if (auto ref = refs.find(revision); ref != refs.end()) {
        const std::string stripped = rstripWhitespace(ref->second);
        if (isCommitSha(stripped)) scan.commit = stripped;
        resolvable = isCommitSha(ref->second) && facts.snapshots.contains(ref->second);
    } else if (!facts.snapshots.empty()) {
        // @huggingface/hub's downloadFileToCacheDir writes no refs and names each snapshot after the
        // file's last commit; the files are there, but Python and Candle cannot find them offline.
        if (facts.snapshots.size() == 1)
            scan.commit = *facts.snapshots.begin();
        else
            unionOfSnapshots = true;
        addProblem(problems, ProblemKind::RefMissing, layout.refsDir() / revision,
                   "refs/" + revision +
                       " is missing although snapshots exist (a cache written by "
                       "@huggingface/hub's downloadFileToCacheDir?): huggingface_hub and hf-hub "
                       "cannot resolve '" +
                       revision + "' offline");
    }

    // What is there: the commit's snapshot, or every snapshot when the commit is unknown.
    std::map<std::string, Pointer> present;
    if (scan.commit) {
        if (auto it = facts.files.find(*scan.commit); it != facts.files.end()) present = it->second;
    } else if (unionOfSnapshots) {
        for (const auto& [commit, files] : facts.files)
            for (const auto& [path, pointer] : files)
                if (pointer.present || !present.contains(path)) present[path] = pointer;
    }

    // What should be there.
    std::vector<std::string> expected;
    std::optional<std::vector<TreeFile>> tree;
    if (scan.commit) {
        auto read = readTree(layout, *scan.commit);
        if (!read)
            addProblem(problems, ProblemKind::TreeUnreadable, layout.treesDir() / (*scan.commit + ".json"),
                       read.error().message + " (huggingface_hub ignores it)");
        else
            tree = std::move(*read);
    }
    if (tree) {
        scan.expectedFrom = ExpectedSource::Tree;
        std::uint64_t bytes = 0;
        std::set<std::string> listed;
        for (const TreeFile& file : *tree) {
            listed.insert(file.path);
            if (!entry.selects(file.path)) continue;
            expected.push_back(file.path);
            bytes += file.size;
        }
        // A file: the listing lacks cannot be there: keep it expected so the entry is not ready.
        for (const std::string& file : wanted)
            if (!listed.contains(file)) expected.push_back(file);
        scan.bytesExpected = bytes;
    } else if (!wanted.empty() && entry.onlyNamedFiles()) {
        scan.expectedFrom = ExpectedSource::FileList;
        expected = wanted;
    } else {
        scan.expectedFrom = ExpectedSource::Snapshot;
        std::set<std::string> set(wanted.begin(), wanted.end());
        for (const auto& [path, pointer] : present)
            if (pointer.present && entry.selects(path)) set.insert(path);
        expected.assign(set.begin(), set.end());
    }
    std::sort(expected.begin(), expected.end());
    expected.erase(std::unique(expected.begin(), expected.end()), expected.end());

    scan.filesExpected = expected.size();
    for (const std::string& path : expected) {
        auto it = present.find(path);
        if (it != present.end() && it->second.present) {
            ++scan.filesPresent;
            scan.bytesPresent += it->second.size;
        } else {
            scan.missingFiles.push_back(path);
        }
    }

    if (scan.commit) {
        for (const std::string& file : wanted) {
            if (!std::binary_search(scan.missingFiles.begin(), scan.missingFiles.end(), file)) continue;
            auto marker = layout.noExist(*scan.commit, file);
            if (marker && isFileAt(*marker)) {
                scan.knownAbsent.push_back(file);
                addProblem(problems, ProblemKind::KnownAbsent, *marker,
                           file + " does not exist in " + entry.repo.display() + " at " + *scan.commit +
                               " (the Hub said so; .no_exist marker)");
            }
        }
    }

    const bool complete = scan.filesPresent == scan.filesExpected && scan.knownAbsent.empty();
    const bool nonEmpty = scan.filesExpected > 0 || scan.expectedFrom == ExpectedSource::Tree;
    if (resolvable && complete && nonEmpty)
        scan.state = EntryState::Ready;
    else if (scan.filesPresent > 0)
        scan.state = EntryState::Partial;
    else
        scan.state = EntryState::Missing;
    return scan;
}

Result<LookupResult> lookup(const fs::path& root, const manifest::RepoRef& repo, std::string_view file) {
    if (auto ok = validateRepoPath(file); !ok) return ok.error();
    if (auto ok = validateRevision(repo.revision); !ok) return ok.error();
    const RepoLayout layout(root, repo);
    LookupResult result;
    std::error_code ec;
    if (!openCacheDir(root, layout.repoDir(), false)) return result;

    // try_to_load_from_cache: the ref's content is used as is, without stripping.
    std::string revision = repo.revision;
    auto ref = readCacheFile(root, layout.refsDir() / revision, kMaxRefBytes);
    if (!ref) return result;
    if (*ref) revision = **ref;
    if (isCommitSha(revision)) result.commit = revision;
    // A ref whose content is not a plain folder name cannot name a snapshot; do not build paths from it.
    const bool plainName = !revision.empty() && revision != "." && revision != ".." &&
                           revision.find('/') == std::string::npos && validateRevision(revision).has_value();
    if (!plainName) return result;

    if (isFileAt(layout.noExistDir() / revision / std::string(file))) {
        result.state = LookupState::Absent;
        return result;
    }
    fs::path cached = layout.snapshotsDir() / revision / std::string(file);
    if (servedFile(layout, cached)) {
        result.state = LookupState::Cached;
        result.path = cached;
    }
    return result;
}

}  // namespace hfwarm::cache
