// The awaitable rate limiter the transfer engine goes through before every Hub request and after
// every chunk read. One io_context, one thread: every member is called on the executor's thread.
#pragma once

#include "hfwarm/ratelimit/class_state.hpp"
#include "hfwarm/ratelimit/clock.hpp"
#include "hfwarm/ratelimit/limits.hpp"
#include "hfwarm/ratelimit/request_class.hpp"
#include "hfwarm/ratelimit/token_bucket.hpp"
#include "hfwarm/util/aliases.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hfwarm::ratelimit {

struct HostClassStatus {
    std::string host;
    RequestClass cls = RequestClass::Api;
    std::size_t waiting = 0;  // coroutines queued in acquire()
    ClassStatus state;
};

struct BandwidthStatus {
    std::uint64_t limit = 0;  // bytes per second, 0 = unlimited
    double tokens = 0;
    std::uint64_t bytes = 0;  // bytes taken through acquireBytes() since start
    std::size_t waiting = 0;
};

struct LimiterStatus {
    double reserve = kDefaultReserve;      // limits.reserve
    std::vector<HostClassStatus> classes;  // sorted by host, then class
    BandwidthStatus bandwidth;
};

// {"reserve", "classes": [{"host", "class", "rule" ("window" or "rate"), "tokens", "rate", "burst",
// "configured_rate", "aimd_factor", "remaining", "quota", "window_s", "reset_in_s", "paused_for_s",
// "probing", "reserved", "in_flight", "responses_429", "requests", "cache_hits", "waiting"}],
// "bandwidth": {"limit_bps", "tokens", "bytes", "waiting"}}; unknown announced values are null.
json toJson(const LimiterStatus& status);

// Prometheus text exposition lines (`hfwarm_ratelimit_*`, `hfwarm_bandwidth_*`) with HELP and TYPE.
std::string toPrometheus(const LimiterStatus& status);

class SharedBudget;

class Limiter {
  public:
    // `clock` is the steady clock when null; tests pass their own.
    Limiter(net::any_io_executor executor, LimiterConfig config, ClassPolicy policy = {},
            std::shared_ptr<LimiterClock> clock = nullptr);
    // Coroutines still waiting when the Limiter goes away resume with operation_aborted.
    ~Limiter();
    Limiter(const Limiter&) = delete;
    Limiter& operator=(const Limiter&) = delete;

    // Waits, in FIFO order per (host, class), until one request of `cls` may be sent to `host`.
    // The first request of a (host, class) goes alone, as a probe: the others wait for its answer
    // (observe()) before the Hub's announced budget sets the pace. Returns at once for
    // RequestClass::Other. Cancellable (cancellation slot, e.g. racing a timer
    // with awaitable operators): the waiter leaves the queue and the call throws
    // boost::system::system_error(operation_aborted). The Limiter must outlive the call.
    net::awaitable<void> acquire(std::string host, RequestClass cls);

    // Shares every (host, class) request budget with the other daemons using the same store (config
    // key `redis`): once the local budget lets a request go, acquire() also takes it from the shared
    // window, and waits for that window's end when the fleet has spent it. The quota and window are
    // the Hub's announced policy, the quota less the reserve (one shared count, spent as fast as the
    // daemons can), else the configured rate over 300 s. When the store cannot answer, the local
    // budget alone decides, and every class is paced (ClassState::setSharedOutage): the other
    // daemons still spend the same window, unseen, so no daemon spends it at once alone. A request the
    // window rule let go before the failure queues again under the pace. After the next answer of the
    // store a class that sent requests during the outage stays paced until the Hub's next reset (the
    // store did not count them), then the shared rule resumes. Null: local only. Call before the first
    // acquire().
    void setSharedBudget(std::unique_ptr<SharedBudget> shared);

    // Waits, FIFO across all transfers, until `n` bytes fit the global bandwidth budget; returns at
    // once when the bandwidth is 0 (unlimited). Call it per chunk. Cancellable like acquire().
    net::awaitable<void> acquireBytes(std::size_t n);

    // Reports the response to a request acquired for (host, cls), as soon as its header is read:
    // the Hub's headers (empty string_view = absent) re-seed the budget, r=0 pauses the class until
    // the reset, a 429 pauses it (RateLimit t, else Retry-After, else backoff) and the next request
    // after the pause is a single probe. status 0 = the request failed without a response (it ends
    // a probe without judging it). `cacheHit` (servedFromCache()): a cache answered, the request
    // cost no budget and its headers are ignored. No effect for RequestClass::Other.
    void observe(std::string_view host, RequestClass cls, int status, std::string_view rateLimitHeader,
                 std::string_view policyHeader, std::string_view retryAfterHeader, bool cacheHit = false);

    // Applies new rates, bursts, reserve and bandwidth to every class, present and future, at once.
    void setLimits(const LimiterConfig& config);
    const LimiterConfig& limits() const { return config_; }

    LimiterStatus snapshot() const;
    json status() const;

  private:
    struct Entry;
    class WaitQueue;

    Entry& entry(std::string_view host, RequestClass cls);
    // Counts a request `e` let go in the shared window, waiting while the fleet has spent it; false
    // when the store did not answer.
    net::awaitable<bool> takeShared(std::string host, RequestClass cls, Entry& e);
    void setSharedOutage(bool outage);
    ClassLimits limitsFor(RequestClass cls) const;

    net::any_io_executor executor_;
    std::shared_ptr<LimiterClock> clock_;
    LimiterConfig config_;
    ClassPolicy policy_;
    std::map<std::pair<std::string, RequestClass>, std::unique_ptr<Entry>> entries_;
    TokenBucket bytesBucket_;
    std::uint64_t bytesTaken_ = 0;
    std::unique_ptr<WaitQueue> bytesQueue_;
    std::unique_ptr<SharedBudget> shared_;
    bool sharedOutage_ = false;  // the store failed to answer the last take
    std::mt19937_64 rng_;
};

}  // namespace hfwarm::ratelimit
