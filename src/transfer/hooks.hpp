// The engine's hooks on the http client: the pause gate, the limiter and request latency.
#pragma once

#include "hfwarm/http/client.hpp"
#include "hfwarm/ratelimit/limiter.hpp"
#include "hfwarm/util/async.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <vector>

namespace hfwarm::transfer {

// Request latency in buckets, as Prometheus histograms count it.
struct Latency {
    std::vector<double> bounds{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(bounds.size() + 1, 0);
    double sum = 0;

    void record(double seconds);
};

// Routes every hop of the http client through the engine's gate and the limiter: a request token
// before a Hub request, the Hub's RateLimit headers after it, and the bandwidth budget before each
// body chunk. Also times each hop.
class LimiterHooks final : public http::Hooks {
  public:
    LimiterHooks(ratelimit::Limiter& limiter, util::Gate& gate, Latency& latency)
        : limiter_(limiter), gate_(gate), latency_(latency) {}

    net::awaitable<void> beforeRequest(const http::RequestInfo& info) override;

    void afterResponse(const http::RequestInfo& info, const http::Response& response) override;

    void afterFailure(const http::RequestInfo& info, const http::Failure&) override;

    net::awaitable<void> beforeBodyChunk(std::size_t bytes) override;

  private:
    ratelimit::Limiter& limiter_;
    util::Gate& gate_;
    Latency& latency_;
    std::map<const http::RequestInfo*, std::chrono::steady_clock::time_point> started_;
};

}  // namespace hfwarm::transfer
