#include "hooks.hpp"

#include "hfwarm/ratelimit/request_class.hpp"

#include <algorithm>

namespace hfwarm::transfer {

using Clock = std::chrono::steady_clock;

void Latency::record(double seconds) {
    auto bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
    counts[static_cast<std::size_t>(bucket)] += 1;
    sum += seconds;
}

net::awaitable<void> LimiterHooks::beforeRequest(const http::RequestInfo& info) {
    co_await gate_.pass();
    co_await limiter_.acquire(info.host, ratelimit::classify(info.path, info.endpointHost));
    // The client passes the same RequestInfo object to afterResponse or afterFailure.
    started_[&info] = Clock::now();
}

void LimiterHooks::afterResponse(const http::RequestInfo& info, const http::Response& response) {
    if (auto it = started_.find(&info); it != started_.end()) {
        latency_.record(std::chrono::duration<double>(Clock::now() - it->second).count());
        started_.erase(it);
    }
    auto header = [&](std::string_view name) { return response.headers.get(name).value_or(""); };
    limiter_.observe(info.host, ratelimit::classify(info.path, info.endpointHost),
                     static_cast<int>(response.status), header("RateLimit"), header("RateLimit-Policy"),
                     header("Retry-After"),
                     ratelimit::servedFromCache(header("Age"), header("X-Cache-Status"), header("X-Cache")));
}

void LimiterHooks::afterFailure(const http::RequestInfo& info, const http::Failure&) {
    started_.erase(&info);
    // Status 0: no verdict, but a probe waiting on this hop's answer need not wait any longer.
    limiter_.observe(info.host, ratelimit::classify(info.path, info.endpointHost), 0, "", "", "");
}

net::awaitable<void> LimiterHooks::beforeBodyChunk(std::size_t bytes) {
    co_await limiter_.acquireBytes(bytes);
}

}  // namespace hfwarm::transfer
