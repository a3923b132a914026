// The limits a user configures (config keys and flags), changeable at run time.
#pragma once

#include <cstdint>

namespace hfwarm::ratelimit {

inline constexpr double kDefaultReserve = 0.1;

// Requests per second and burst of one class. They apply until the Hub announces a fixed window in
// `RateLimit-Policy` with its `RateLimit` count, and whenever its policy is another kind; within an
// announced fixed window the count the Hub says remains sets what may go. Rates must be > 0; bursts
// >= 0 (0: strictly paced, no burst).
struct ClassLimits {
    double rate = 1.0;
    double burst = 1.0;
    bool operator==(const ClassLimits&) const = default;
};

// Defaults stay under the anonymous limits (hub-protocol.md section 8: 500 api and 3,000 resolver
// requests per 5-minute window, i.e. 1.67/s and 10/s): a full burst plus the rate for the rest of the
// window is 20 + 1.5 * 300 = 470 and 50 + 9 * 300 = 2,750.
struct LimiterConfig {
    ClassLimits api{1.5, 20.0};
    ClassLimits resolvers{9.0, 50.0};
    // The share of each announced fixed window's quota never spent (config key `limits.reserve`),
    // left for the user's own tools on the same IP or token: 0 to 0.9.
    double reserve = kDefaultReserve;
    // Bytes per second for all transfers together; 0 = unlimited.
    std::uint64_t bandwidth = 0;
    bool operator==(const LimiterConfig&) const = default;
};

}  // namespace hfwarm::ratelimit
