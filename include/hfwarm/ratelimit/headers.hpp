// Strict parsers for the Hub's rate-limit response headers (hub-protocol.md 2.7, 2.8): `RateLimit`
// and `RateLimit-Policy` as the Hub sends them (IETF draft-ietf-httpapi-ratelimit-headers, version 9)
// and `Retry-After` (RFC 9110 10.2.3). They never throw: anything malformed, negative or larger than
// a structured-field integer (15 digits) yields nullopt, so a garbage header is ignored.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::ratelimit {

// One item of `RateLimit: "resolvers";r=12;t=34`.
struct RateLimitItem {
    std::string bucket;           // "api", "resolvers", "pages", ...
    std::uint64_t remaining = 0;  // r: requests left in the current window
    std::uint64_t resetIn = 0;    // t: seconds until the window resets
    bool operator==(const RateLimitItem&) const = default;
};

// One item of `RateLimit-Policy: "fixed window";"resolvers";q=3000;w=300`.
struct RateLimitPolicyItem {
    std::string kind;          // "fixed window"; empty when the item names only the bucket
    std::string bucket;        // "api", "resolvers", "pages", ...
    std::uint64_t quota = 0;   // q: requests per window
    std::uint64_t window = 0;  // w: window length in seconds, never 0
    bool operator==(const RateLimitPolicyItem&) const = default;
};

// Parses a `RateLimit` header: one or more comma-separated items, each one or more quoted strings
// (the last is the bucket) followed by `;key=value` parameters; `r` and `t` are required, unknown
// parameters are skipped. Whitespace is allowed around `,`, `;` and `=`. Returns nullopt when any
// item is malformed.
std::optional<std::vector<RateLimitItem>> parseRateLimit(std::string_view header);

// Parses a `RateLimit-Policy` header the same way; `q` and `w` are required and `w` must be > 0.
std::optional<std::vector<RateLimitPolicyItem>> parseRateLimitPolicy(std::string_view header);

// Parses `Retry-After` as delta-seconds or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`); a date
// at or before `now` gives 0 s. The obsolete RFC 850 and asctime forms are rejected.
std::optional<std::chrono::seconds> parseRetryAfter(std::string_view header,
                                                    std::chrono::system_clock::time_point now);

}  // namespace hfwarm::ratelimit
