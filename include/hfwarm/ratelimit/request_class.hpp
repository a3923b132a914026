// Which of the Hub's request buckets a request counts against (hub-protocol.md section 8).
#pragma once

#include <string_view>

namespace hfwarm::ratelimit {

// Api: `/api/...` calls (repo info, tree pages, paths-info). Resolvers: every URL containing
// `/resolve/`. Other: anything else, including every request to a CDN host; it is not limited by
// request count.
enum class RequestClass { Api, Resolvers, Other };

// Classifies a request by its path (a query string or fragment is ignored). `hubHost` is false for
// any host other than the configured Hub endpoint (the CDN a resolver redirects to): such requests
// are always Other.
RequestClass classify(std::string_view path, bool hubHost = true);

// The bucket name the Hub uses in `RateLimit` headers: "api", "resolvers"; "other" for Other.
std::string_view className(RequestClass cls);

}  // namespace hfwarm::ratelimit
