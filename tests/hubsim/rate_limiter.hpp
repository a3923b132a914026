// The Hub's request quotas: a fixed window per identity (bearer token, else client address) and per
// class, reported in the IETF draft-9 headers the Hub sends (hub-protocol.md sections 2.8 and 8).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace hfwarm::hubsim {

enum class RequestClass { Api, Resolvers, Cdn, Other };

const char* className(RequestClass c);

struct Quota {
    bool limited = false;  // false when the class has no quota: no headers are sent
    bool allowed = true;
    std::uint64_t remaining = 0;
    std::uint64_t resetSeconds = 0;
    std::uint64_t limit = 0;
    std::uint64_t windowSeconds = 0;
    std::uint64_t windowNumber = 0;  // 1 for the identity's first window of the class, then 2, ...

    // `"api";r=12;t=30`
    std::string rateLimitHeader(RequestClass c) const;
    // `"fixed window";"api";q=500;w=300`
    std::string policyHeader(RequestClass c) const;
};

class RateLimiter {
  public:
    using Clock = std::chrono::steady_clock;

    // A quota of 0 disables the limit of that class.
    RateLimiter(std::uint64_t apiQuota, std::uint64_t resolverQuota, std::chrono::seconds window);

    // Counts one request. A window starts at the first request of an identity and class and lasts
    // `window`; every request in it counts, refused ones too.
    Quota take(RequestClass c, const std::string& identity, Clock::time_point now);

  private:
    struct Window {
        Clock::time_point start;
        std::uint64_t used = 0;
        std::uint64_t number = 1;
    };
    std::uint64_t apiQuota_;
    std::uint64_t resolverQuota_;
    std::chrono::seconds window_;
    std::map<std::pair<RequestClass, std::string>, Window> windows_;
};

}  // namespace hfwarm::hubsim
