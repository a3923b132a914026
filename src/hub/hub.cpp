#include "hfwarm/hub/hub.hpp"

#include "hfwarm/util/hash.hpp"
#include "hfwarm/util/log.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace hfwarm::hub {

namespace {

// Server-provided text goes into messages and logs: keep it short and printable.
std::string printable(std::string_view text, std::size_t limit = 300) {
    std::string out;
    for (char c : text.substr(0, limit)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
    if (text.size() > limit) out += "...";
    return out;
}

bool allDigits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// The integer after `key=` in a structured-field header such as `"api";r=0;t=42`.
std::optional<std::uint64_t> fieldParameter(std::string_view header, std::string_view key) {
    std::size_t pos = 0;
    while ((pos = header.find(key, pos)) != std::string_view::npos) {
        bool boundary =
            pos == 0 || header[pos - 1] == ';' || std::isspace(static_cast<unsigned char>(header[pos - 1]));
        std::size_t cursor = pos + key.size();
        while (cursor < header.size() && header[cursor] == ' ') ++cursor;
        if (boundary && cursor < header.size() && header[cursor] == '=') {
            ++cursor;
            while (cursor < header.size() && header[cursor] == ' ') ++cursor;
            std::size_t end = cursor;
            while (end < header.size() && std::isdigit(static_cast<unsigned char>(header[end]))) ++end;
            if (end > cursor && end - cursor < 19)
                return std::stoull(std::string(header.substr(cursor, end - cursor)));
        }
        pos += key.size();
    }
    return std::nullopt;
}

std::optional<std::uint64_t> unsignedField(const json& object, const char* key) {
    auto it = object.find(key);
    if (it == object.end()) return std::nullopt;
    if (it->is_number_unsigned()) return it->get<std::uint64_t>();
    if (it->is_number_integer() && it->get<std::int64_t>() >= 0)
        return static_cast<std::uint64_t>(it->get<std::int64_t>());
    return std::nullopt;
}

const std::string* stringField(const json& object, const char* key) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_string()) return nullptr;
    return it->get_ptr<const std::string*>();
}

bool present(const json& object, const char* key) {
    auto it = object.find(key);
    return it != object.end() && !it->is_null();
}

HubError malformed(const RepoRef& repo, const std::string& what) {
    HubError error;
    error.kind = ErrorKind::Permanent;
    error.message = "the file listing of " + describe(repo) + " from the Hub is malformed: " + what +
                    "; check --endpoint points to a Hugging Face Hub";
    return error;
}

std::string entryName(std::size_t index, const json& entry, const char* pathKey) {
    std::string name = "entry " + std::to_string(index);
    if (auto path = stringField(entry, pathKey)) name += " ('" + printable(*path, 200) + "')";
    return name;
}

// Reads size, blob sha1, LFS and Xet fields shared by revision siblings and tree entries; the two
// APIs differ in key names only.
HubResult<RepoFile> decodeFile(const json& entry, std::size_t index, const RepoRef& repo, const char* pathKey,
                               const char* blobKey, const char* lfsHashKey) {
    if (!entry.is_object()) return malformed(repo, "entry " + std::to_string(index) + " is not an object");
    RepoFile file;
    auto path = stringField(entry, pathKey);
    if (!path || path->empty())
        return malformed(repo, "entry " + std::to_string(index) + " has no '" + pathKey + "' string");
    file.path = *path;
    auto size = unsignedField(entry, "size");
    if (!size)
        return malformed(repo, entryName(index, entry, pathKey) + " has no non-negative integer 'size'");
    file.size = *size;
    auto blob = stringField(entry, blobKey);
    if (!blob || !util::isHex(*blob, 40))
        return malformed(repo, entryName(index, entry, pathKey) + " has no 40-hex '" + blobKey + "'");
    file.blobId = *blob;
    if (present(entry, "lfs")) {
        const json& lfs = entry["lfs"];
        if (!lfs.is_object())
            return malformed(repo, entryName(index, entry, pathKey) + " has a non-object 'lfs'");
        auto sha = stringField(lfs, lfsHashKey);
        if (!sha || !util::isHex(*sha, 64))
            return malformed(repo,
                             entryName(index, entry, pathKey) + " has no 64-hex 'lfs." + lfsHashKey + "'");
        auto lfsSize = unsignedField(lfs, "size");
        if (!lfsSize)
            return malformed(repo,
                             entryName(index, entry, pathKey) + " has no non-negative integer 'lfs.size'");
        file.lfs = LfsInfo{*sha, *lfsSize};
        // The LFS object is the content; `size` already equals it on the Hub, but the object wins.
        file.size = *lfsSize;
    }
    if (present(entry, "xetHash")) {
        auto xet = stringField(entry, "xetHash");
        if (!xet || !util::isHex(*xet, 64))
            return malformed(repo, entryName(index, entry, pathKey) + " has a 'xetHash' that is not 64 hex");
        file.xetHash = *xet;
    }
    return file;
}

bool tokenWentTo(const http::Client& client, const http::Response& response) {
    if (client.options().token.empty()) return false;
    auto url = http::parseUrl(response.finalUrl);
    return url && http::sendsToken(*url, client.options().tokenHost, response.crossedHost,
                                   client.options().tokenOverHttp);
}

HubError listingFailure(const http::Failure& failure, const RepoRef& repo) {
    HubError error = errorFromFailure(failure);
    error.message = "cannot list " + describe(repo) + ": " + error.message;
    return error;
}

}  // namespace

std::string_view apiSegment(RepoType type) {
    switch (type) {
        case RepoType::Dataset:
            return "datasets";
        case RepoType::Space:
            return "spaces";
        case RepoType::Model:
            break;
    }
    return "models";
}

std::string_view urlPrefix(RepoType type) {
    switch (type) {
        case RepoType::Dataset:
            return "datasets/";
        case RepoType::Space:
            return "spaces/";
        case RepoType::Model:
            break;
    }
    return "";
}

std::string describe(const RepoRef& repo) {
    std::string name = std::string(urlPrefix(repo.type)) + repo.id;
    if (repo.revision != "main") name += "@" + repo.revision;
    return name;
}

std::string trimEndpoint(std::string_view endpoint) {
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.remove_suffix(1);
    return std::string(endpoint);
}

std::string resolveUrl(std::string_view endpoint, RepoType type, std::string_view id,
                       std::string_view revision, std::string_view path) {
    return trimEndpoint(endpoint) + "/" + std::string(urlPrefix(type)) + http::quote(id, "/") + "/resolve/" +
           http::quote(revision, "") + "/" + http::quote(path, "/");
}

std::string resolveUrl(std::string_view endpoint, const RepoRef& repo, std::string_view path) {
    return resolveUrl(endpoint, repo.type, repo.id, repo.revision, path);
}

std::string revisionUrl(std::string_view endpoint, const RepoRef& repo) {
    return trimEndpoint(endpoint) + "/api/" + std::string(apiSegment(repo.type)) + "/" +
           http::quote(repo.id, "/") + "/revision/" + http::quote(repo.revision, "") + "?blobs=true";
}

std::string treeUrl(std::string_view endpoint, const RepoRef& repo, std::string_view revision) {
    return trimEndpoint(endpoint) + "/api/" + std::string(apiSegment(repo.type)) + "/" +
           http::quote(repo.id, "/") + "/tree/" + http::quote(revision, "") + "?recursive=true";
}

bool HubError::retryable() const {
    return kind == ErrorKind::Network || kind == ErrorKind::RateLimited || kind == ErrorKind::Server;
}

void throw_exception_from_error(const HubError& error, const boost::source_location&) {
    throw ErrorException(Error{error.message});
}

std::optional<std::chrono::seconds> retryAfter(const http::Headers& headers,
                                               std::chrono::system_clock::time_point now) {
    if (auto value = headers.get("retry-after")) {
        auto text = trim(*value);
        if (allDigits(text) && text.size() < 10) return std::chrono::seconds(std::stoll(std::string(text)));
        // HTTP-date, IMF-fixdate form: "Sun, 06 Nov 1994 08:49:37 GMT".
        std::tm tm{};
        std::string copy(text);
        const char* end = strptime(copy.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (end && *end == '\0') {
            auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
            auto wait = std::chrono::ceil<std::chrono::seconds>(at - now);
            return std::max(wait, std::chrono::seconds(0));
        }
    }
    if (auto value = headers.get("ratelimit")) {
        auto remaining = fieldParameter(*value, "r");
        auto reset = fieldParameter(*value, "t");
        if (remaining && reset && *remaining == 0) return std::chrono::seconds(*reset);
    }
    return std::nullopt;
}

HubError errorFromFailure(const http::Failure& failure) {
    HubError error;
    error.kind = failure.retryable() ? ErrorKind::Network : ErrorKind::Permanent;
    error.message = failure.message;
    return error;
}

HubError errorFromResponse(const http::Response& response, const RepoRef& repo, std::string_view path,
                           bool tokenSent, std::chrono::system_clock::time_point now) {
    HubError error;
    error.status = response.status;
    const auto& headers = response.headers;
    if (auto code = headers.get("x-error-code")) error.code = printable(trim(*code), 64);
    for (const char* name : {"x-request-id", "x-amzn-trace-id", "x-amz-cf-id"}) {
        if (auto id = headers.get(name)) {
            error.requestId = printable(trim(*id), 128);
            break;
        }
    }
    error.retryAfter = retryAfter(headers, now);

    std::string serverMessage;
    if (auto message = headers.get("x-error-message")) {
        serverMessage = std::string(trim(*message));
    } else {
        auto body = json::parse(response.body, nullptr, false);
        if (!body.is_discarded() && body.is_object()) {
            if (auto text = stringField(body, "error")) serverMessage = *text;
        }
    }

    const std::string name = describe(repo);
    const std::string subject = path.empty() ? name : std::string(path) + " in " + name;
    const unsigned status = response.status;
    std::string text;
    if (status == 429) {
        error.kind = ErrorKind::RateLimited;
        text = "the Hub rate-limited the request for " + subject + " (HTTP 429)";
        text += error.retryAfter ? "; it asks to wait " + std::to_string(error.retryAfter->count()) + " s"
                                 : "; the limit resets within its window";
        if (!tokenSent) text += "; a token (HF_TOKEN) raises the limits";
    } else if (status == 408 || status >= 500) {
        error.kind = ErrorKind::Server;
        text = "the Hub answered HTTP " + std::to_string(status) + " for " + subject +
               ", a server-side error that usually passes";
    } else if (error.code == "GatedRepo") {
        error.kind = ErrorKind::Denied;
        text = name + " is a gated repository: accept its conditions on its Hub page, then ";
        text += tokenSent ? "make sure HF_TOKEN belongs to that account"
                          : "set HF_TOKEN to a token of that account";
    } else if (serverMessage == "Access to this resource is disabled.") {
        error.kind = ErrorKind::Denied;
        text = name + " is disabled on the Hub";
    } else if (status == 401 && serverMessage == "Invalid credentials in Authorization header") {
        error.kind = ErrorKind::Denied;
        text = "the Hub rejected the token for " + name + ": check HF_TOKEN (or the file HF_TOKEN_PATH)";
    } else if (error.code == "RepoNotFound" || status == 401) {
        // The Hub answers 401 for private and gated repos as for missing ones.
        error.kind = tokenSent && status == 401 ? ErrorKind::Denied : ErrorKind::NotFound;
        text = "repository " + name + " not found";
        text += tokenSent
                    ? " or the token has no access to it: check the id and the token's permissions"
                    : ", or it is private or gated: check the id, or set HF_TOKEN to a token with access";
    } else if (error.code == "RevisionNotFound") {
        error.kind = ErrorKind::NotFound;
        text = "revision '" + repo.revision + "' not found in " + std::string(urlPrefix(repo.type)) +
               repo.id + ": check the branch, tag or commit";
    } else if (error.code == "EntryNotFound" || status == 404) {
        error.kind = ErrorKind::NotFound;
        text = path.empty() ? name + " not found on the Hub (HTTP 404)"
                            : "file " + std::string(path) + " not found in " + name + ": check the file name";
    } else if (status == 403) {
        error.kind = ErrorKind::Denied;
        text = "access to " + subject + " was refused (HTTP 403)";
        if (!tokenSent) text += "; set HF_TOKEN if the repository is private or gated";
    } else {
        error.kind = ErrorKind::Permanent;
        text = "the Hub answered HTTP " + std::to_string(status) + " for " + subject;
    }
    if (!error.code.empty()) text += " [" + error.code + "]";
    if (!serverMessage.empty()) text += " (server: " + printable(serverMessage) + ")";
    if (!error.requestId.empty()) text += " (request id " + error.requestId + ")";
    error.message = std::move(text);
    return error;
}

HubResult<Listing> parseRevision(std::string_view body, const RepoRef& repo) {
    auto doc = json::parse(body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return malformed(repo, "the body is not a JSON object");
    auto sha = stringField(doc, "sha");
    if (!sha || !util::isHex(*sha, 40)) return malformed(repo, "'sha' is missing or not a 40-hex commit");
    auto siblings = doc.find("siblings");
    if (siblings == doc.end() || !siblings->is_array())
        return malformed(repo, "'siblings' is missing or not a list");
    Listing listing;
    listing.commit = *sha;
    listing.files.reserve(siblings->size());
    std::size_t index = 0;
    for (const auto& entry : *siblings) {
        auto file = decodeFile(entry, index++, repo, "rfilename", "blobId", "sha256");
        if (!file) return file.error();
        listing.files.push_back(std::move(*file));
    }
    listing.complete = true;
    return listing;
}

HubResult<std::vector<RepoFile>> parseTreePage(std::string_view body, const RepoRef& repo) {
    auto doc = json::parse(body, nullptr, false);
    if (doc.is_discarded() || !doc.is_array()) return malformed(repo, "a tree page is not a JSON list");
    std::vector<RepoFile> files;
    files.reserve(doc.size());
    std::size_t index = 0;
    for (const auto& entry : doc) {
        if (!entry.is_object())
            return malformed(repo, "tree entry " + std::to_string(index) + " is not an object");
        auto type = stringField(entry, "type");
        if (!type) return malformed(repo, entryName(index, entry, "path") + " has no 'type' string");
        // Directories carry tree ids, not files; "unknown" entries cannot be downloaded.
        if (*type != "file") {
            ++index;
            continue;
        }
        auto file = decodeFile(entry, index++, repo, "path", "oid", "oid");
        if (!file) return file.error();
        files.push_back(std::move(*file));
    }
    return files;
}

std::optional<std::string> nextLink(std::string_view header) {
    std::size_t pos = 0;
    while (pos < header.size()) {
        auto open = header.find('<', pos);
        if (open == std::string_view::npos) break;
        auto close = header.find('>', open);
        if (close == std::string_view::npos) break;
        std::string_view target = header.substr(open + 1, close - open - 1);
        auto next = header.find('<', close);
        std::string_view params =
            header.substr(close + 1, next == std::string_view::npos ? next : next - close - 1);
        // Parameters end at the comma that separates link values.
        std::size_t cursor = 0;
        while (cursor < params.size()) {
            auto semicolon = params.find(';', cursor);
            if (semicolon == std::string_view::npos) break;
            auto end = params.find_first_of(";,", semicolon + 1);
            std::string_view param =
                trim(params.substr(semicolon + 1, end == std::string_view::npos ? end : end - semicolon - 1));
            cursor = end == std::string_view::npos ? params.size() : end;
            auto equals = param.find('=');
            if (equals == std::string_view::npos) continue;
            std::string key(trim(param.substr(0, equals)));
            std::string value(trim(param.substr(equals + 1)));
            if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
                value = value.substr(1, value.size() - 2);
            std::transform(key.begin(), key.end(), key.begin(),
                           [](unsigned char c) { return std::tolower(c); });
            std::transform(value.begin(), value.end(), value.begin(),
                           [](unsigned char c) { return std::tolower(c); });
            if (key != "rel") continue;
            // rel may list several relation types separated by spaces.
            std::size_t start = 0;
            while (start <= value.size()) {
                auto space = value.find(' ', start);
                if (value.substr(start, space == std::string::npos ? space : space - start) == "next")
                    return std::string(trim(target));
                if (space == std::string::npos) break;
                start = space + 1;
            }
        }
        pos = close + 1;
    }
    return std::nullopt;
}

net::awaitable<HubResult<Listing>> listRepo(http::Client& client, std::string endpoint, RepoRef repo) {
    http::Request request;
    request.url = revisionUrl(endpoint, repo);
    request.headers.add("Accept", "application/json");
    auto response = co_await client.fetch(std::move(request), http::FetchOptions{});
    if (!response) co_return listingFailure(response.error(), repo);
    if (response->status != 200)
        co_return errorFromResponse(*response, repo, "", tokenWentTo(client, *response),
                                    std::chrono::system_clock::now());
    auto listing = parseRevision(response->body, repo);
    if (listing) {
        util::logger("hub")->debug("listed repo={} commit={} files={} redirects={}", describe(repo),
                                   listing->commit, listing->files.size(), response->redirects);
    }
    co_return listing;
}

net::awaitable<HubResult<Listing>> listTree(http::Client& client, std::string endpoint, RepoRef repo,
                                            std::string commit) {
    // 1000 entries a page: this bounds a listing at ten million files, far above any Hub repo.
    constexpr int kMaxPages = 10'000;
    Listing listing;
    listing.commit = commit;
    std::string url = treeUrl(endpoint, repo, commit);
    for (int page = 0;; ++page) {
        if (page == kMaxPages)
            co_return malformed(repo,
                                "the tree listing did not end after " + std::to_string(kMaxPages) + " pages");
        http::Request request;
        request.url = url;
        request.headers.add("Accept", "application/json");
        auto response = co_await client.fetch(std::move(request), http::FetchOptions{});
        if (!response) co_return listingFailure(response.error(), repo);
        if (response->status != 200)
            co_return errorFromResponse(*response, repo, "", tokenWentTo(client, *response),
                                        std::chrono::system_clock::now());
        auto files = parseTreePage(response->body, repo);
        if (!files) co_return files.error();
        listing.files.insert(listing.files.end(), std::make_move_iterator(files->begin()),
                             std::make_move_iterator(files->end()));
        auto link = response->headers.get("link");
        auto next = link ? nextLink(*link) : std::nullopt;
        if (!next) break;
        auto target = http::redirectTarget(response->finalUrl, *next);
        if (!target) co_return malformed(repo, "the next-page link is unusable: " + target.error().message);
        url = target->url;
    }
    listing.complete = true;
    util::logger("hub")->debug("listed tree repo={} commit={} files={}", describe(repo), listing.commit,
                               listing.files.size());
    co_return listing;
}

}  // namespace hfwarm::hub
