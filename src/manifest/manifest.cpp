#include "hfwarm/manifest/manifest.hpp"

#include "hfwarm/util/hash.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace hfwarm::manifest {

namespace {

constexpr std::string_view kSpecList =
    "file:PATH, gguf:PATH, include:GLOB, exclude:GLOB, revision:REV, optional";
constexpr std::string_view kRepoExpected =
    "expected [models/|datasets/|spaces/]owner/name[@revision], or a single legacy name such as gpt2";
constexpr std::string_view kRevisionExpected = "expected a branch, a tag or a 40-hex commit";
constexpr std::string_view kPathExpected = "expected a relative path inside the repo such as onnx/model.onnx";
// The Hub's limit on each part of a repo id (huggingface_hub validate_repo_id).
constexpr std::size_t kMaxIdPartLength = 96;

struct Token {
    std::string_view text;
    int column = 0;
};

bool isBlank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

bool isControl(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

bool hasControl(std::string_view s) {
    return std::any_of(s.begin(), s.end(), isControl);
}

// Tokens are echoed in messages; control bytes are shown as \xNN so a message never carries them
// to a terminal.
std::string quote(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (isControl(c)) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
            out += buf;
        } else {
            out += c;
        }
    }
    out += '\'';
    return out;
}

// Columns count characters, not bytes, so they match what an editor shows for UTF-8 text.
int columnOf(std::string_view line, std::size_t offset) {
    int column = 1;
    for (std::size_t i = 0; i < offset; ++i)
        if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80) ++column;
    return column;
}

std::vector<Token> tokenize(std::string_view line) {
    std::vector<Token> tokens;
    std::size_t i = 0;
    while (i < line.size()) {
        if (isBlank(line[i])) {
            ++i;
            continue;
        }
        // A '#' only starts a comment at the start of a token; inside one it is an ordinary byte.
        if (line[i] == '#') break;
        const std::size_t start = i;
        while (i < line.size() && !isBlank(line[i])) ++i;
        tokens.push_back({line.substr(start, i - start), columnOf(line, start)});
    }
    return tokens;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (;;) {
        const std::size_t pos = s.find(sep, start);
        parts.push_back(
            s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
        if (pos == std::string_view::npos) return parts;
        start = pos + 1;
    }
}

bool isIdChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

std::optional<std::string> idProblem(std::string_view id) {
    const auto parts = split(id, '/');
    if (parts.size() > 2) return std::to_string(parts.size()) + " parts separated by '/'";
    for (std::string_view part : parts) {
        if (part.empty()) return std::string("an empty name");
        for (char c : part)
            if (!isIdChar(c))
                return quote(std::string_view(&c, 1)) +
                       " is not allowed (letters, digits, '-', '_' and '.' only)";
        if (part.find("--") != std::string_view::npos) return std::string("'--' is not allowed");
        if (part.find("..") != std::string_view::npos) return std::string("'..' is not allowed");
        if (part.front() == '-' || part.front() == '.' || part.back() == '-' || part.back() == '.')
            return quote(part) + " starts or ends with '-' or '.'";
        if (part.size() > kMaxIdPartLength)
            return quote(part) + " is " + std::to_string(part.size()) + " characters long (at most " +
                   std::to_string(kMaxIdPartLength) + ")";
    }
    return std::nullopt;
}

// Revisions name refs/<revision> in the cache, so they are held to the rules of a relative path
// as well as git's ban on '..'.
std::optional<std::string> revisionProblem(std::string_view rev) {
    if (rev.empty()) return std::string("it is empty");
    if (hasControl(rev)) return std::string("control characters are not allowed");
    if (rev.find("..") != std::string_view::npos) return std::string("'..' is not allowed");
    if (rev.find('\\') != std::string_view::npos) return std::string("'\\' is not allowed");
    for (std::string_view segment : split(rev, '/'))
        if (segment.empty()) return std::string("it has an empty '/'-separated segment");
    return std::nullopt;
}

std::optional<std::string> pathProblem(std::string_view path) {
    if (hasControl(path)) return std::string("control characters are not allowed");
    if (path.find('\\') != std::string_view::npos) return std::string("'\\' is not allowed, use '/'");
    if (path.front() == '/') return std::string("it is absolute");
    if (path.back() == '/') return std::string("it ends with '/' (use include:DIR/ for a folder)");
    for (std::string_view segment : split(path, '/')) {
        if (segment.empty()) return std::string("it has an empty segment");
        if (segment == "..") return std::string("'..' is not allowed");
        if (segment == ".") return std::string("'.' segments are not allowed");
    }
    return std::nullopt;
}

std::string revisionError(std::string_view rev, const std::string& problem) {
    return "invalid revision " + quote(rev) + ": " + problem + "; " + std::string(kRevisionExpected);
}

// Parses a repo reference; the error is the whole message.
Result<RepoRef> parseRef(std::string_view text) {
    RepoRef ref;
    std::string_view name = text;
    const std::size_t at = text.find('@');
    if (at != std::string_view::npos) {
        name = text.substr(0, at);
        const std::string_view rev = text.substr(at + 1);
        if (rev.empty())
            return makeError("empty revision after '@' in " + quote(text) + "; " +
                             std::string(kRevisionExpected));
        if (auto problem = revisionProblem(rev)) return makeError(revisionError(rev, *problem));
        ref.revision = std::string(rev);
    }
    const std::string_view written = name;
    static constexpr std::pair<std::string_view, RepoType> kPrefixes[] = {
        {"models/", RepoType::Model}, {"datasets/", RepoType::Dataset}, {"spaces/", RepoType::Space}};
    for (const auto& [prefix, type] : kPrefixes) {
        if (name.starts_with(prefix)) {
            ref.type = type;
            name.remove_prefix(prefix.size());
            break;
        }
    }
    if (auto problem = idProblem(name))
        return makeError("invalid repo id " + quote(written) + ": " + *problem + "; " +
                         std::string(kRepoExpected));
    ref.id = std::string(name);
    return ref;
}

void appendUnique(std::vector<std::string>& list, const std::string& value) {
    if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}

// One parsed line: the key it names and what it selects.
struct Line {
    RepoRef repo;
    Selection selection;
};

// The specs of a selection as one string, lines aside: equal strings mean identical selections.
std::string signature(const Selection& s) {
    std::string out = s.optional ? "o" : "r";
    for (const auto* list : {&s.files, &s.includes, &s.excludes}) {
        out += '\0';
        for (const auto& item : *list) out += item + '\n';
    }
    return out;
}

// Gathers lines into entries by key with hash maps, so that merging stays linear in the number of
// lines however many repeat one repo.
class Merger {
  public:
    explicit Merger(std::vector<Entry>& entries) : entries_(entries) {
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            index_.emplace(entries_[i].repo, i);
            for (const auto& s : entries_[i].selections) seen_[i].insert(signature(s));
        }
    }

    void add(RepoRef repo, Selection selection) {
        auto [it, inserted] = index_.emplace(repo, entries_.size());
        if (inserted) entries_.push_back(Entry{std::move(repo), {}});
        const std::size_t i = it->second;
        if (!seen_[i].insert(signature(selection)).second) return;
        entries_[i].selections.push_back(std::move(selection));
    }

  private:
    std::vector<Entry>& entries_;
    std::unordered_map<RepoRef, std::size_t> index_;
    std::unordered_map<std::size_t, std::unordered_set<std::string>> seen_;
};

// huggingface_hub filter_repo_objects: a pattern ending in '/' gets '*' appended. Without flags,
// fnmatch lets '*' match '/', as Python's fnmatchcase does. glibc still differs on rare forms:
// '[^a]' negates (Python reads a literal '^'), POSIX classes such as '[[:alpha:]]', and '?' matches
// one byte of a multi-byte UTF-8 character where Python matches the whole character.
bool globMatches(const std::string& pattern, const std::string& path) {
    const std::string full = pattern.ends_with('/') ? pattern + "*" : pattern;
    return ::fnmatch(full.c_str(), path.c_str(), 0) == 0;
}

bool anyMatches(const std::vector<std::string>& patterns, const std::string& path) {
    return std::any_of(patterns.begin(), patterns.end(),
                       [&](const std::string& p) { return globMatches(p, path); });
}

bool isSpecKey(std::string_view key) {
    return key == "file" || key == "gguf" || key == "include" || key == "exclude" || key == "revision";
}

class LineParser {
  public:
    LineParser(std::string_view fileName, int lineNumber, std::vector<Diagnostic>& errors)
        : fileName_(fileName), line_(lineNumber), errors_(errors) {}

    // Returns the line's key and selection when it had no error.
    std::optional<Line> parse(const std::vector<Token>& tokens) {
        const std::size_t errorsBefore = errors_.size();
        Line entry;
        entry.selection.source = std::string(fileName_);
        entry.selection.line = line_;
        const Token& head = tokens.front();
        auto ref = parseRef(head.text);
        if (ref) {
            entry.repo = *ref;
            if (head.text.find('@') != std::string_view::npos) {
                revisionSource_ = "@" + ref->revision;
                revisionColumn_ = head.column;
            }
        } else if (isSpecKey(head.text.substr(0, head.text.find(':')))) {
            error(head, "a line must start with a repo id, found the spec " + quote(head.text) + "; " +
                            std::string(kRepoExpected));
        } else {
            error(head, ref.error().message);
        }

        for (std::size_t i = 1; i < tokens.size(); ++i) spec(tokens[i], entry);
        if (errors_.size() != errorsBefore) return std::nullopt;
        return entry;
    }

  private:
    void error(const Token& token, std::string message) {
        errors_.push_back({std::string(fileName_), line_, token.column, std::move(message)});
    }

    void spec(const Token& token, Line& entry) {
        const std::string_view text = token.text;
        const std::size_t colon = text.find(':');
        if (colon == std::string_view::npos) {
            if (text == "optional") {
                entry.selection.optional = true;
                return;
            }
            std::string message =
                "unexpected " + quote(text) + "; expected a spec: " + std::string(kSpecList);
            // A second owner/name on the line is a likely slip; a single word more likely a mistyped spec.
            if (text.find('/') != std::string_view::npos && parseRef(text)) message += " (one repo per line)";
            error(token, std::move(message));
            return;
        }
        const std::string_view key = text.substr(0, colon);
        const std::string_view value = text.substr(colon + 1);
        if (key == "file" || key == "gguf") {
            if (value.empty()) return error(token, "expected a path after '" + std::string(key) + ":'");
            if (auto problem = pathProblem(value))
                return error(token, "invalid path in " + quote(text) + ": " + *problem + "; " +
                                        std::string(kPathExpected));
            appendUnique(entry.selection.files, std::string(value));
        } else if (key == "include" || key == "exclude") {
            if (value.empty()) return error(token, "expected a glob after '" + std::string(key) + ":'");
            if (hasControl(value))
                return error(token, "invalid glob in " + quote(text) +
                                        ": control characters are not allowed; expected a pattern such as "
                                        "*.safetensors or onnx/");
            // huggingface_hub (v1.23) turns '\' into '/' in patterns before matching.
            std::string glob(value);
            std::replace(glob.begin(), glob.end(), '\\', '/');
            appendUnique(key == "include" ? entry.selection.includes : entry.selection.excludes, glob);
        } else if (key == "revision") {
            if (value.empty())
                return error(token,
                             "expected a revision after 'revision:'; " + std::string(kRevisionExpected));
            if (auto problem = revisionProblem(value)) return error(token, revisionError(value, *problem));
            const std::string given = "revision:" + std::string(value);
            if (!revisionSource_.empty() && entry.repo.revision != value)
                return error(token, quote(given) + " conflicts with '" + revisionSource_ + "' at column " +
                                        std::to_string(revisionColumn_) + "; give the revision once");
            entry.repo.revision = std::string(value);
            revisionSource_ = given;
            revisionColumn_ = token.column;
        } else if (key == "optional") {
            error(token, "unexpected " + quote(text) + ": 'optional' takes no value; expected 'optional'");
        } else {
            error(token, "unknown spec " + quote(text) + "; expected one of " + std::string(kSpecList));
        }
    }

    std::string_view fileName_;
    int line_;
    std::vector<Diagnostic>& errors_;
    std::string revisionSource_;  // "@rev" or "revision:rev", once a revision was given
    int revisionColumn_ = 0;
};

// The selections of one entry, merged where a single line selects their union: lines with the same
// exclude: globs and optional flag. Each merged line is "spec spec ..." sorted.
std::vector<std::string> normalizedSelections(const Entry& e) {
    struct Merged {
        bool everything = false;
        std::set<std::string> files;
        std::set<std::string> includes;
    };
    std::map<std::pair<std::set<std::string>, bool>, Merged> groups;
    for (const auto& s : e.selections) {
        auto& m = groups[{std::set<std::string>(s.excludes.begin(), s.excludes.end()), s.optional}];
        // include:* selects every path, as a line without file: or include: does.
        const bool all = (s.files.empty() && s.includes.empty()) ||
                         std::find(s.includes.begin(), s.includes.end(), "*") != s.includes.end();
        m.everything = m.everything || all;
        m.files.insert(s.files.begin(), s.files.end());
        m.includes.insert(s.includes.begin(), s.includes.end());
    }
    // An optional line adds nothing to the cache that a required line with the same exclude: globs
    // already brings, so it does not change the key.
    auto covered = [&](const std::set<std::string>& excludes, const Merged& optional) {
        auto required = groups.find({excludes, false});
        if (required == groups.end()) return false;
        const Merged& r = required->second;
        const auto within = [](const std::set<std::string>& part, const std::set<std::string>& whole) {
            return std::includes(whole.begin(), whole.end(), part.begin(), part.end());
        };
        return within(optional.files, r.files) &&
               (r.everything || (!optional.everything && within(optional.includes, r.includes)));
    };
    std::vector<std::string> lines;
    for (const auto& [group, m] : groups) {
        if (group.second && covered(group.first, m)) continue;
        std::vector<std::string> specs;
        for (const auto& f : m.files) specs.push_back("file:" + f);
        if (m.everything) {
            // Every file plus the file: paths: include:* says it on one line; alone, no spec does.
            if (!m.files.empty()) specs.emplace_back("include:*");
        } else {
            for (const auto& g : m.includes) specs.push_back("include:" + g);
        }
        for (const auto& g : group.first) specs.push_back("exclude:" + g);
        if (group.second) specs.emplace_back("optional");
        std::sort(specs.begin(), specs.end());
        std::string line;
        for (const auto& spec : specs) line += " " + spec;
        lines.push_back(std::move(line));
    }
    return lines;
}

bool selectsBySpecs(const std::vector<std::string>& files, const std::vector<std::string>& includes,
                    const std::vector<std::string>& excludes, std::string_view path) {
    // fnmatch stops at a NUL; such a path is never a valid repo file.
    if (path.find('\0') != std::string_view::npos) return false;
    // huggingface_hub (v1.23) turns '\\' into '/' in paths before matching.
    std::string p(path);
    std::replace(p.begin(), p.end(), '\\', '/');
    bool chosen = true;
    if (!files.empty())
        chosen = std::find(files.begin(), files.end(), p) != files.end() || anyMatches(includes, p);
    else if (!includes.empty())
        chosen = anyMatches(includes, p);
    return chosen && !anyMatches(excludes, p);
}

}  // namespace

std::string_view typeName(RepoType type) {
    switch (type) {
        case RepoType::Model:
            return "model";
        case RepoType::Dataset:
            return "dataset";
        case RepoType::Space:
            return "space";
    }
    return "model";
}

std::string RepoRef::display() const {
    std::string out = type == RepoType::Model ? id : std::string(typeName(type)) + "s/" + id;
    if (revision != "main") out += "@" + revision;
    return out;
}

bool Selection::selects(std::string_view path) const {
    return selectsBySpecs(files, includes, excludes, path);
}

std::string Selection::where() const {
    return source + ":" + std::to_string(line);
}

bool Selection::sameSpecs(const Selection& other) const {
    return files == other.files && includes == other.includes && excludes == other.excludes &&
           optional == other.optional;
}

bool Entry::selects(std::string_view path) const {
    return std::any_of(selections.begin(), selections.end(),
                       [&](const Selection& s) { return s.selects(path); });
}

bool Entry::optional() const {
    return std::all_of(selections.begin(), selections.end(), [](const Selection& s) { return s.optional; });
}

std::vector<std::string> Entry::namedFiles() const {
    std::vector<std::string> out;
    std::unordered_set<std::string> seen;
    for (const auto& s : selections)
        for (const auto& f : s.files)
            if (seen.insert(f).second) out.push_back(f);
    return out;
}

bool Entry::onlyNamedFiles() const {
    return std::all_of(selections.begin(), selections.end(),
                       [](const Selection& s) { return !s.files.empty() && s.includes.empty(); });
}

bool Entry::sameSelections(const Entry& other) const {
    return repo == other.repo && selections.size() == other.selections.size() &&
           std::equal(selections.begin(), selections.end(), other.selections.begin(),
                      [](const Selection& a, const Selection& b) { return a.sameSpecs(b); });
}

std::string Diagnostic::format() const {
    std::string out = file;
    if (line > 0) {
        out += ":" + std::to_string(line);
        if (column > 0) out += ":" + std::to_string(column);
    }
    return out + ": " + message;
}

Result<RepoRef> parseRepoRef(std::string_view text) {
    return parseRef(text);
}

ParseResult parse(std::string_view text, std::string_view fileName) {
    ParseResult result;
    // Editors on Windows may start the file with a UTF-8 byte order mark.
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
    Merger merger(result.manifest.entries);
    int lineNumber = 0;
    for (std::string_view line : split(text, '\n')) {
        ++lineNumber;
        const auto tokens = tokenize(line);
        if (tokens.empty()) continue;
        if (auto parsed = LineParser(fileName, lineNumber, result.errors).parse(tokens))
            merger.add(std::move(parsed->repo), std::move(parsed->selection));
    }
    return result;
}

ParseResult load(const std::filesystem::path& file) {
    const std::string name = file.string();
    auto fail = [&](std::string message) {
        ParseResult result;
        result.errors.push_back({name, 0, 0, std::move(message)});
        return result;
    };
    auto failErrno = [&](int err) {
        return fail(std::string("cannot read the manifest: ") + std::strerror(err) + "; check the path");
    };
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer for ever.
    const int fd = ::open(name.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return failErrno(errno);
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) return failErrno(errno);
    if (S_ISDIR(st.st_mode)) return failErrno(EISDIR);
    if (!S_ISREG(st.st_mode))
        return fail(
            "cannot read the manifest: it is not a regular file (a FIFO, socket or device); give the "
            "path of a manifest file");
    if (static_cast<std::uint64_t>(st.st_size) > kMaxManifestBytes)
        return fail("the manifest is " + std::to_string(st.st_size) + " bytes, more than the limit of " +
                    std::to_string(kMaxManifestBytes) +
                    " (16 MiB); split it into several manifests or "
                    "remove entries");
    std::string text;
    char buf[65536];
    while (true) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno(errno);
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        // The file may grow after fstat: the limit holds for what is read.
        if (text.size() > kMaxManifestBytes)
            return fail("the manifest grew past the limit of " + std::to_string(kMaxManifestBytes) +
                        " bytes (16 MiB) while it was read; split it into several manifests");
    }
    return parse(text, name);
}

ParseResult loadAll(const std::vector<std::filesystem::path>& files) {
    ParseResult all;
    Merger merger(all.manifest.entries);
    for (const auto& file : files) {
        ParseResult one = load(file);
        for (auto& e : one.manifest.entries)
            for (auto& s : e.selections) merger.add(e.repo, std::move(s));
        all.errors.insert(all.errors.end(), one.errors.begin(), one.errors.end());
    }
    return all;
}

std::string normalize(const Manifest& manifest) {
    std::vector<std::string> lines;
    for (const auto& e : manifest.entries) {
        const std::string head =
            std::string(typeName(e.repo.type)) + "s/" + e.repo.id + "@" + e.repo.revision;
        for (const auto& selection : normalizedSelections(e)) lines.push_back(head + selection);
    }
    std::sort(lines.begin(), lines.end());
    lines.erase(std::unique(lines.begin(), lines.end()), lines.end());
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

std::string cacheKey(const Manifest& manifest) {
    return util::sha256Hex(normalize(manifest));
}

}  // namespace hfwarm::manifest

std::size_t std::hash<hfwarm::manifest::RepoRef>::operator()(
    const hfwarm::manifest::RepoRef& ref) const noexcept {
    const std::size_t h = std::hash<std::string>{}(ref.id);
    const std::size_t r = std::hash<std::string>{}(ref.revision);
    return h ^ (r + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2)) ^ static_cast<std::size_t>(ref.type);
}
