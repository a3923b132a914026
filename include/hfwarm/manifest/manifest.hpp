// Model manifests: the grammar of DESIGN.md section 2, entry selection, and the cache key.
//
// A manifest is text, one entry a line:
//   [models/|datasets/|spaces/]ID[@REVISION] [file:P|gguf:P|include:G|exclude:G|revision:R|optional]...
// Parsing never throws on bad input: every problem of a file is returned at once as a Diagnostic
// that names the file, the line, the column and what was expected.
#pragma once

#include "hfwarm/util/result.hpp"

#include <cstdint>
#include <filesystem>
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

struct Entry {
    RepoRef repo;
    std::vector<std::string> files;     // file: and gguf: paths, in order, without duplicates
    std::vector<std::string> includes;  // include: globs
    std::vector<std::string> excludes;  // exclude: globs
    bool optional = false;

    std::string source;  // manifest file it came from (first one when merged)
    int line = 0;        // line it came from (first one when merged)

    // DESIGN.md section 2 selection: with any file:, those files plus include matches; else with
    // include:, files matching one; else every file; exclude: then removes. Globs follow
    // huggingface_hub's filter_repo_objects (fnmatch, case-sensitive, '*' matches '/', a trailing
    // '/' means a folder).
    bool selects(std::string_view path) const;
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
    std::vector<Entry> entries;  // duplicates merged; same repo with another revision is another entry
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

// Parses manifest text; `fileName` is only used in diagnostics and Entry::source.
ParseResult parse(std::string_view text, std::string_view fileName);

// The largest manifest file load() reads.
inline constexpr std::uint64_t kMaxManifestBytes = 16 * 1024 * 1024;

// Reads and parses a file; an unreadable file is one Diagnostic at line 0, and so is anything
// but a regular file (a FIFO, /dev/zero, a folder) and a file over kMaxManifestBytes.
ParseResult load(const std::filesystem::path& file);

// Parses several files and merges their entries as one manifest.
ParseResult loadAll(const std::vector<std::filesystem::path>& files);

// The normalized, canonical text of a manifest: one line per entry, sorted, specs sorted, no
// comments or spacing. Two manifests that differ only cosmetically give the same text.
std::string normalize(const Manifest& manifest);

// sha256 hex of normalize(); what `hfwarmctl cache-key` prints.
std::string cacheKey(const Manifest& manifest);

}  // namespace hfwarm::manifest
