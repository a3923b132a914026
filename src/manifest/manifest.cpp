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
#include <memory>
#include <optional>
#include <string>
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

void mergeInto(std::vector<Entry>& entries, Entry entry) {
    auto same =
        std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.repo == entry.repo; });
    if (same == entries.end()) {
        entries.push_back(std::move(entry));
        return;
    }
    for (const auto& f : entry.files) appendUnique(same->files, f);
    for (const auto& g : entry.includes) appendUnique(same->includes, g);
    for (const auto& g : entry.excludes) appendUnique(same->excludes, g);
    same->optional = same->optional && entry.optional;
}

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

    // Returns the entry when the line had no error.
    std::optional<Entry> parse(const std::vector<Token>& tokens) {
        const std::size_t errorsBefore = errors_.size();
        Entry entry;
        entry.source = std::string(fileName_);
        entry.line = line_;
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

    void spec(const Token& token, Entry& entry) {
        const std::string_view text = token.text;
        const std::size_t colon = text.find(':');
        if (colon == std::string_view::npos) {
            if (text == "optional") {
                entry.optional = true;
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
            appendUnique(entry.files, std::string(value));
        } else if (key == "include" || key == "exclude") {
            if (value.empty()) return error(token, "expected a glob after '" + std::string(key) + ":'");
            if (hasControl(value))
                return error(token, "invalid glob in " + quote(text) +
                                        ": control characters are not allowed; expected a pattern such as "
                                        "*.safetensors or onnx/");
            // huggingface_hub (v1.23) turns '\' into '/' in patterns before matching.
            std::string glob(value);
            std::replace(glob.begin(), glob.end(), '\\', '/');
            appendUnique(key == "include" ? entry.includes : entry.excludes, glob);
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

std::string entryLine(const Entry& e) {
    std::vector<std::string> specs;
    for (const auto& f : e.files) specs.push_back("file:" + f);
    for (const auto& g : e.includes) specs.push_back("include:" + g);
    for (const auto& g : e.excludes) specs.push_back("exclude:" + g);
    if (e.optional) specs.emplace_back("optional");
    std::sort(specs.begin(), specs.end());
    specs.erase(std::unique(specs.begin(), specs.end()), specs.end());
    std::string line = std::string(typeName(e.repo.type)) + "s/" + e.repo.id + "@" + e.repo.revision;
    for (const auto& s : specs) line += " " + s;
    return line;
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

bool Entry::selects(std::string_view path) const {
    // fnmatch stops at a NUL; such a path is never a valid repo file.
    if (path.find('\0') != std::string_view::npos) return false;
    // huggingface_hub (v1.23) turns '\' into '/' in paths before matching.
    std::string p(path);
    std::replace(p.begin(), p.end(), '\\', '/');
    bool chosen = true;
    if (!files.empty())
        chosen = std::find(files.begin(), files.end(), p) != files.end() || anyMatches(includes, p);
    else if (!includes.empty())
        chosen = anyMatches(includes, p);
    return chosen && !anyMatches(excludes, p);
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
    int lineNumber = 0;
    for (std::string_view line : split(text, '\n')) {
        ++lineNumber;
        const auto tokens = tokenize(line);
        if (tokens.empty()) continue;
        if (auto entry = LineParser(fileName, lineNumber, result.errors).parse(tokens))
            mergeInto(result.manifest.entries, std::move(*entry));
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
    for (const auto& file : files) {
        ParseResult one = load(file);
        for (auto& e : one.manifest.entries) mergeInto(all.manifest.entries, std::move(e));
        all.errors.insert(all.errors.end(), one.errors.begin(), one.errors.end());
    }
    return all;
}

std::string normalize(const Manifest& manifest) {
    std::vector<std::string> lines;
    for (const auto& e : manifest.entries) lines.push_back(entryLine(e));
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
