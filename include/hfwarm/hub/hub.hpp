// Typed calls to the Hugging Face Hub on top of http::Client: URLs with the Hub's encoding, repo
// listings (revision?blobs=true and the paginated recursive tree), and Hub errors turned into
// values that say what to do and whether a retry can help. No Beast here.
#pragma once

#include "hfwarm/http/client.hpp"
#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/util/aliases.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::hub {

using manifest::RepoRef;
using manifest::RepoType;

// ---- URLs ---------------------------------------------------------------------------------------

// "models", "datasets", "spaces": the segment after /api/.
std::string_view apiSegment(RepoType type);
// "", "datasets/", "spaces/": the prefix of resolve URLs.
std::string_view urlPrefix(RepoType type);
// "gpt2", "datasets/org/name", "spaces/org/name@v1" (the revision only when it is not main): how
// messages name a repo.
std::string describe(const RepoRef& repo);

// `endpoint` without trailing slashes ("https://huggingface.co").
std::string trimEndpoint(std::string_view endpoint);

// {endpoint}/{prefix}{id}/resolve/{revision}/{path}: the revision is ONE segment (quote with no
// safe character, "refs/pr/1" -> "refs%2Fpr%2F1"), the path is quoted per segment (safe "/").
std::string resolveUrl(std::string_view endpoint, RepoType type, std::string_view id,
                       std::string_view revision, std::string_view path);
// Same with repo.revision.
std::string resolveUrl(std::string_view endpoint, const RepoRef& repo, std::string_view path);
// {endpoint}/api/{type}s/{id}/revision/{revision}?blobs=true
std::string revisionUrl(std::string_view endpoint, const RepoRef& repo);
// {endpoint}/api/{type}s/{id}/tree/{revision}?recursive=true
std::string treeUrl(std::string_view endpoint, const RepoRef& repo, std::string_view revision);

// ---- Errors -------------------------------------------------------------------------------------

enum class ErrorKind {
    Network,      // no response (connect, timeout, stall, reset): retry with backoff
    RateLimited,  // 429: pause the request class until retryAfter (or the RateLimit reset), then retry
    Server,       // 408 or 5xx: retry with backoff
    NotFound,     // 404 (RepoNotFound, RevisionNotFound, EntryNotFound) or 401 sent without a token
    Denied,       // 401 with a token, 403, GatedRepo, DisabledRepo: permanent until the user acts
    Permanent,    // any other 4xx, TLS, redirect policy, malformed response: permanent
};

struct HubError {
    ErrorKind kind = ErrorKind::Permanent;
    unsigned status = 0;    // HTTP status; 0 when no response arrived
    std::string code;       // X-Error-Code as sent ("EntryNotFound", "GatedRepo", ...), or empty
    std::string message;    // whole sentence: what failed, on which repo/file, what to do
    std::string requestId;  // X-Request-Id (or X-Amzn-Trace-Id), for reports to the Hub
    std::optional<std::chrono::seconds> retryAfter;  // Retry-After, else RateLimit t= when r=0

    // Network, RateLimited and Server.
    bool retryable() const;
};

[[noreturn]] void throw_exception_from_error(const HubError& error, const boost::source_location& loc);

template <class T>
using HubResult = boost::system::result<T, HubError>;

// The error for a response whose status is not 2xx/3xx. `path` is the file for resolve requests
// (empty for listings); `tokenSent` says whether Authorization went with the request, which turns a
// 401 into "set HF_TOKEN" or "the token was rejected".
HubError errorFromResponse(const http::Response& response, const RepoRef& repo, std::string_view path,
                           bool tokenSent, std::chrono::system_clock::time_point now);

// The error for a request that got no usable response.
HubError errorFromFailure(const http::Failure& failure);

// Seconds to wait from `Retry-After` (delay-seconds or an HTTP-date relative to `now`), else from
// `RateLimit: "...";r=0;t=N`. Nothing when neither says.
std::optional<std::chrono::seconds> retryAfter(const http::Headers& headers,
                                               std::chrono::system_clock::time_point now);

// ---- Listings -----------------------------------------------------------------------------------

struct LfsInfo {
    std::string sha256;  // 64 hex
    std::uint64_t size = 0;
};

// One file of a listing. `path` is raw, as the server sent it: the cache module validates it.
struct RepoFile {
    std::string path;
    std::uint64_t size = 0;      // real content size
    std::string blobId;          // git blob sha1 (40 hex)
    std::optional<LfsInfo> lfs;  // LFS (and Xet) files
    std::string xetHash;         // 64 hex, or empty

    // The blob name in the cache: the LFS sha256 when the file is in LFS, else the git blob sha1.
    const std::string& etag() const { return lfs ? lfs->sha256 : blobId; }
};

struct Listing {
    std::string commit;           // 40-hex commit the files belong to
    std::vector<RepoFile> files;  // files only, in server order
    bool complete = false;        // every file of the commit is listed (trees/<commit>.json allowed)
};

// GET /api/{type}s/{id}/revision/{revision}?blobs=true: the commit and every file in one API
// request. Relative redirects (legacy and renamed ids) are followed.
// Pass a named RepoRef: GCC 12 miscompiles a temporary aggregate such as `RepoRef{...}` written
// inside a co_await expression (see http::Request).
net::awaitable<HubResult<Listing>> listRepo(http::Client& client, std::string endpoint, RepoRef repo);

// GET /api/{type}s/{id}/tree/{commit}?recursive=true, following `Link: <...>; rel="next"` until the
// last page. `commit` should be the 40-hex commit; it is copied into Listing::commit.
net::awaitable<HubResult<Listing>> listTree(http::Client& client, std::string endpoint, RepoRef repo,
                                            std::string commit);

// Pure decoders, exposed for tests. Every field is type-checked; a malformed body is a Permanent
// error naming the repo.
HubResult<Listing> parseRevision(std::string_view body, const RepoRef& repo);
HubResult<std::vector<RepoFile>> parseTreePage(std::string_view body, const RepoRef& repo);

// The target of the `rel="next"` entry of a Link header value, if any.
std::optional<std::string> nextLink(std::string_view linkHeader);

}  // namespace hfwarm::hub
