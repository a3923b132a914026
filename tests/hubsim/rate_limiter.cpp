#include "rate_limiter.hpp"

#include <fmt/format.h>

namespace hfwarm::hubsim {

const char* className(RequestClass c) {
    switch (c) {
        case RequestClass::Api:
            return "api";
        case RequestClass::Resolvers:
            return "resolvers";
        case RequestClass::Cdn:
            return "cdn";
        case RequestClass::Other:
            return "other";
    }
    return "other";
}

std::string Quota::rateLimitHeader(RequestClass c) const {
    return fmt::format("\"{}\";r={};t={}", className(c), remaining, resetSeconds);
}

std::string Quota::policyHeader(RequestClass c) const {
    return fmt::format("\"fixed window\";\"{}\";q={};w={}", className(c), limit, windowSeconds);
}

RateLimiter::RateLimiter(std::uint64_t apiQuota, std::uint64_t resolverQuota, std::chrono::seconds window)
    : apiQuota_(apiQuota), resolverQuota_(resolverQuota), window_(window) {}

Quota RateLimiter::take(RequestClass c, const std::string& identity, Clock::time_point now) {
    const std::uint64_t limit = c == RequestClass::Api         ? apiQuota_
                                : c == RequestClass::Resolvers ? resolverQuota_
                                                               : 0;
    Quota q;
    if (limit == 0) return q;
    auto [it, inserted] = windows_.try_emplace({c, identity}, Window{now, 0, 1});
    Window& w = it->second;
    if (now >= w.start + window_) w = Window{now, 0, w.number + 1};
    ++w.used;
    const auto left = std::chrono::ceil<std::chrono::seconds>(w.start + window_ - now).count();
    q.limited = true;
    q.allowed = w.used <= limit;
    q.remaining = q.allowed ? limit - w.used : 0;
    q.resetSeconds = static_cast<std::uint64_t>(std::max<std::int64_t>(left, 1));
    q.limit = limit;
    q.windowSeconds = static_cast<std::uint64_t>(window_.count());
    q.windowNumber = w.number;
    return q;
}

}  // namespace hfwarm::hubsim
