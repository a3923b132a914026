// What the cache holds for a manifest entry, computed from the disk alone (no network), and the
// offline lookup of one file.
//
// The scanner reads caches written by huggingface_hub, hf-hub 0.x and @huggingface/hub and reports
// what would stop those readers: refs with trailing whitespace (Python and Candle read them raw),
// refs to missing snapshots, broken or absolute symlinks, leftovers of interrupted downloads.
#pragma once

#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/util/result.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::cache {

enum class EntryState {
    Ready,    // every expected file is in the snapshot and readers can resolve the revision offline
    Partial,  // something is there, but a file is missing or the revision does not resolve
    Missing,  // nothing of the entry is there
};

// "ready", "partial", "missing"
std::string_view stateName(EntryState state);

enum class ProblemKind {
    IncompleteLeftover,   // blobs/*.incomplete, *.part, *.sync.part from an interrupted download
    OrphanBlob,           // a blob no snapshot points to
    BrokenSymlink,        // a snapshot pointer whose target does not exist
    AbsoluteSymlink,      // a snapshot pointer with an absolute target (breaks when the cache moves)
    PointerOutsideBlobs,  // a snapshot pointer leading somewhere other than this repo's blobs/
    RefWhitespace,        // refs/<rev> with trailing whitespace or newline
    RefInvalid,           // refs/<rev> that does not hold a 40-hex commit
    RefMissingSnapshot,   // refs/<rev> naming a commit without a snapshots/<commit> folder
    RefMissing,           // refs/<revision> absent while files are there (@huggingface/hub writes none)
    ShaRefMissing,        // sha-pinned entry without refs/<sha>: hf-hub 0.x (Candle) misses it
    KnownAbsent,          // a wanted file has a .no_exist marker: the Hub said it does not exist
    TreeUnreadable,       // trees/<commit>.json exists but is not a valid listing
    Unreadable,           // a folder or file could not be read (permissions, I/O error)
    SymlinkInCache,       // the repo folder, one of its folders or a blob is a symlink: never followed
};

struct Problem {
    ProblemKind kind;
    std::filesystem::path path;  // what it is about
    std::string message;         // one line, what is wrong and what it breaks
};

// Where the list of expected files came from.
enum class ExpectedSource {
    Tree,      // trees/<commit>.json, filtered by the entry's selection: exact
    FileList,  // the entry's file: list alone: exact
    Snapshot,  // no listing: the selected files present (plus any file: ones); completeness unknown
};

struct EntryScan {
    EntryState state = EntryState::Missing;
    std::filesystem::path repoDir;
    std::optional<std::string> commit;  // the commit the revision resolves to, when known
    ExpectedSource expectedFrom = ExpectedSource::Snapshot;
    std::size_t filesPresent = 0;
    std::size_t filesExpected = 0;
    std::uint64_t bytesPresent = 0;              // sizes of the present expected files
    std::optional<std::uint64_t> bytesExpected;  // from the tree listing
    std::vector<std::string> missingFiles;       // expected and not present, sorted
    std::vector<std::string> knownAbsent;        // wanted files the Hub said do not exist
    std::vector<Problem> problems;
};

// Scans the cache at `root` for one manifest entry. Never throws on a strange cache: what cannot
// be read becomes a Problem. A symlinked repo folder (or blobs/, snapshots/, refs/) is not
// followed: the entry is missing. A snapshot file whose blob is a symlink is not present.
EntryScan scanEntry(const std::filesystem::path& root, const manifest::Entry& entry);

enum class LookupState { Cached, Absent, Unknown };

// "cached", "absent", "unknown"
std::string_view lookupStateName(LookupState state);

struct LookupResult {
    LookupState state = LookupState::Unknown;
    std::filesystem::path path;         // snapshots/<commit>/<file> (absolute) when Cached
    std::optional<std::string> commit;  // the commit the revision resolved to, when it did
};

// huggingface_hub's try_to_load_from_cache: refs/<revision> read raw when it exists (else the
// revision itself), then .no_exist/<commit>/<file> gives Absent, then snapshots/<commit>/<file>
// as a regular file, or a symlink to a regular file in this repo's blobs/, gives Cached; anything
// else (a symlink anywhere else on the way) is Unknown. An invalid file name or revision is
// an error.
Result<LookupResult> lookup(const std::filesystem::path& root, const manifest::RepoRef& repo,
                            std::string_view file);

}  // namespace hfwarm::cache
