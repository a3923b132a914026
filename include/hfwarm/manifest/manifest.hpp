// Model manifests: the grammar of DESIGN.md section 2, entries and their selections, the cache key.
//
// A manifest is text, one entry a line:
//   [models/|datasets/|spaces/]ID[@REVISION] [file:P|gguf:P|include:G|exclude:G|revision:R|optional]...
// Parsing never throws on bad input: every problem of a file is returned at once as a Diagnostic
// that names the file, the line, the column and what was expected.
#pragma once

#include "hfwarm/util/result.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::manifest {

enum class RepoType { Model, Dataset, Space };

// "model", "dataset", "space": the names used in status output and the cache's folder prefix
// (plus an "s").
std::string_view typeName(RepoType type);

struct RepoRef {
    RepoType type = RepoType::Model;
    std::string id;                 // "owner/name" or a legacy single name such as "gpt2"
    std::string revision = "main";  // branch, tag or 40-hex commit

    // "org/name", "datasets/org/name", with "@rev" when the revision is not main.
    std::string display() const;
    friend bool operator==(const RepoRef&, const RepoRef&) = default;
};

// What one manifest line asks of a repo: its own specs and its own `optional` flag.
struct Selection {
    std::vector<std::string> files;     // file: and gguf: paths, in order, without duplicates
    std::vector<std::string> includes;  // include: globs
    std::vector<std::string> excludes;  // exclude: globs
    bool optional = false;

    std::string source;  // manifest file the line is in
    int line = 0;        // its line number

    // DESIGN.md section 2 selection: with any file:, those files plus include matches; else with
    // include:, files matching one; else every file; exclude: then removes. Globs follow
    // huggingface_hub's filter_repo_objects (fnmatch, case-sensitive, '*' matches '/', a trailing
    // '/' means a folder).
    bool selects(std::string_view path) const;

    // "file:line", how status and --once name the line a failure comes from.
    std::string where() const;

    // Same specs and flag, wherever the lines are.
    bool sameSpecs(const Selection& other) const;
};

// One repo at one revision. Its key is `repo` (type, id, revision): every line naming that key,
// in one manifest or several, is one of its selections, and the entry fetches the union of what
// they select.
struct Entry {
    RepoRef repo;
    std::vector<Selection> selections;  // in order of first appearance, identical lines once

    // Whether any selection selects `path`.
    bool selects(std::string_view path) const;

    // Optional when every selection is: only then may the entry fail without failing --once.
    bool optional() const;

    // Every file: path of every selection, in order, without duplicates.
    std::vector<std::string> namedFiles() const;

    // Whether the entry selects nothing beyond the file: paths its selections name (none selects
    // every file or uses include:).
    bool onlyNamedFiles() const;

    // The selections as they were written: same key and same selections (lines aside).
    bool sameSelections(const Entry& other) const;
};

struct Diagnostic {
    std::string file;
    int line = 0;
    int column = 0;
    std::string message;  // what was wrong and what was expected

    // "file:line:column: message"; "file:line: message" without a column and "file: message"
    // without a line (a file that cannot be read).
    std::string format() const;
};

struct Manifest {
    std::vector<Entry> entries;  // one per key, in order of first appearance
};

struct ParseResult {
    Manifest manifest;
    std::vector<Diagnostic> errors;
    bool ok() const { return errors.empty(); }
};

// Parses one repo reference, "[models/|datasets/|spaces/]ID[@REVISION]", by the manifest's rules
// (for repo names given on a command line or in a socket request). The error says what was wrong
// and what was expected.
Result<RepoRef> parseRepoRef(std::string_view text);

// Parses manifest text; `fileName` is only used in diagnostics and Selection::source. Lines with
// the same key merge into one entry in time linear in the number of lines.
ParseResult parse(std::string_view text, std::string_view fileName);

// The largest manifest file load() reads.
inline constexpr std::uint64_t kMaxManifestBytes = 16 * 1024 * 1024;

// Reads and parses a file; an unreadable file is one Diagnostic at line 0, and so is anything
// but a regular file (a FIFO, /dev/zero, a folder) and a file over kMaxManifestBytes.
ParseResult load(const std::filesystem::path& file);

// Parses several files and merges their entries as one manifest.
ParseResult loadAll(const std::vector<std::filesystem::path>& files);

// The normalized, canonical text of a manifest, sorted, specs sorted, no comments or spacing.
// Within an entry, selections with the same exclude: globs and the same optional flag are one
// line, since their union is the line that holds all their specs (a line selecting every file
// absorbs the include: globs and keeps its file: paths, which still record absent files); an
// optional line is left out when a required line with the same exclude: globs brings all it does. Two
// manifests that differ only cosmetically, or that split one line into several, give the same text.
std::string normalize(const Manifest& manifest);

// sha256 hex of normalize(); what `hfwarmctl cache-key` prints.
std::string cacheKey(const Manifest& manifest);

}  // namespace hfwarm::manifest

// RepoRef is the key of an entry everywhere (engine, scheduler, status, lookup, metrics).
template <>
struct std::hash<hfwarm::manifest::RepoRef> {
    std::size_t operator()(const hfwarm::manifest::RepoRef& ref) const noexcept;
};
