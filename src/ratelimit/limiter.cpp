#include "hfwarm/ratelimit/limiter.hpp"

#include "hfwarm/ratelimit/shared_budget.hpp"
#include "hfwarm/util/log.hpp"

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <list>
#include <optional>

namespace hfwarm::ratelimit {
namespace {

// The window of a shared budget before the Hub has announced its own: the Hub's windows are 5 minutes
// (hub-protocol.md section 8).
constexpr std::chrono::seconds kGuessedWindow{300};

// How much of the bandwidth may be spent at once: a fifth of a second's worth, so that the cap
// holds over short intervals as well.
constexpr double kBandwidthBurstSeconds = 0.2;

double bandwidthBurst(std::uint64_t bandwidth) {
    return std::max(1.0, static_cast<double>(bandwidth) * kBandwidthBurstSeconds);
}

TimePoint deadline(TimePoint now, Duration wait) {
    if (wait >= TimePoint::max() - now) return TimePoint::max();
    return now + wait;
}

std::string lowerHost(std::string_view host) {
    std::string out(host);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

// Coroutines waiting their turn, first come first served. Only the head asks the budget; the others
// sleep until the head leaves. A waiter is woken by cancelling its timer after setting `woken`, so
// that an operation_aborted without `woken` is the caller's own cancellation.
class Limiter::WaitQueue {
  public:
    struct Waiter {
        explicit Waiter(const net::any_io_executor& ex) : timer(ex) {}
        net::steady_timer timer;
        WaitQueue* queue = nullptr;  // null once the queue is gone
        bool woken = false;
    };

    WaitQueue() = default;
    WaitQueue(const WaitQueue&) = delete;
    WaitQueue& operator=(const WaitQueue&) = delete;

    ~WaitQueue() {
        for (Waiter* w : waiters_) {
            w->queue = nullptr;
            w->timer.cancel();
        }
    }

    // Returns once `tryGo(now)` grants (returns nullopt) while this caller is at the head; until
    // then tryGo says how long to sleep. tryGo is never called again after the queue is destroyed.
    template <class TryGo>
    net::awaitable<void> wait(net::any_io_executor ex, const LimiterClock& clock, TryGo tryGo) {
        if (waiters_.empty() && !tryGo(clock.now())) co_return;
        Waiter self(ex);
        self.queue = this;
        waiters_.push_back(&self);
        // Leaves the queue on every way out: granted, cancelled, or the frame destroyed with the
        // io_context.
        struct Leave {
            Waiter& w;
            ~Leave() {
                if (w.queue) w.queue->remove(&w);
            }
        } leave{self};
        for (;;) {
            if (waiters_.front() == &self) {
                auto now = clock.now();
                auto wait = tryGo(now);
                if (!wait) co_return;
                self.timer.expires_at(clock.wakeAt(deadline(now, *wait)));
            } else {
                self.timer.expires_at(TimePoint::max());
            }
            self.woken = false;
            auto [ec] = co_await self.timer.async_wait(net::as_tuple(net::use_awaitable));
            if (!self.queue || (ec == net::error::operation_aborted && !self.woken))
                throw boost::system::system_error(net::error::operation_aborted);
        }
    }

    // Lets the head ask again now (the budget changed).
    void wakeHead() {
        if (waiters_.empty()) return;
        Waiter* head = waiters_.front();
        head->woken = true;
        head->timer.cancel();
    }

    std::size_t size() const { return waiters_.size(); }

  private:
    void remove(Waiter* w) {
        bool wasHead = !waiters_.empty() && waiters_.front() == w;
        waiters_.remove(w);
        w->queue = nullptr;
        if (wasHead) wakeHead();
    }

    std::list<Waiter*> waiters_;
};

struct Limiter::Entry {
    Entry(ClassLimits limits, TimePoint now, ClassPolicy policy) : state(limits, now, policy) {}
    ClassState state;
    WaitQueue queue;
};

namespace {

class SteadyClock final : public LimiterClock {
  public:
    TimePoint now() const override { return Clock::now(); }
};

}  // namespace

std::shared_ptr<LimiterClock> steadyClock() {
    return std::make_shared<SteadyClock>();
}

Limiter::Limiter(net::any_io_executor executor, LimiterConfig config, ClassPolicy policy,
                 std::shared_ptr<LimiterClock> clock)
    : executor_(std::move(executor)),
      clock_(clock ? std::move(clock) : steadyClock()),
      config_(config),
      policy_(policy),
      bytesBucket_(static_cast<double>(config.bandwidth), bandwidthBurst(config.bandwidth), clock_->now()),
      bytesQueue_(std::make_unique<WaitQueue>()),
      rng_(std::random_device{}()) {
    // A clock that moves on its own: every head asks again.
    clock_->onAdvance([this] {
        for (auto& [key, e] : entries_) e->queue.wakeHead();
        bytesQueue_->wakeHead();
    });
}

Limiter::~Limiter() {
    clock_->onAdvance({});
}

ClassLimits Limiter::limitsFor(RequestClass cls) const {
    return cls == RequestClass::Api ? config_.api : config_.resolvers;
}

Limiter::Entry& Limiter::entry(std::string_view host, RequestClass cls) {
    auto key = std::make_pair(lowerHost(host), cls);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        auto now = clock_->now();
        it = entries_.emplace(key, std::make_unique<Entry>(limitsFor(cls), now, policy_)).first;
        it->second->state.setReserve(config_.reserve);
        it->second->state.setSharedOutage(now, sharedOutage_);
    }
    return *it->second;
}

net::awaitable<void> Limiter::acquire(std::string host, RequestClass cls) {
    if (cls == RequestClass::Other) co_return;
    Entry& e = entry(host, cls);
    for (;;) {
        bool windowGrant = false;
        co_await e.queue.wait(executor_, *clock_,
                              [&e, &windowGrant](TimePoint now) -> std::optional<Duration> {
                                  auto d = e.state.tryAcquire(now);
                                  if (!d.go) return d.wait;
                                  windowGrant = e.state.status(now).windowRule;
                                  return std::nullopt;
                              });
        if (!shared_) co_return;
        auto shared = co_await takeShared(host, cls, e);
        if (shared) co_return;
        // The store stopped answering while this request waited for it: the window rule let it go on
        // the assumption that the fleet's count bounds it. It queues again under the pace instead.
        if (!windowGrant) co_return;
        e.state.withdraw(clock_->now());
    }
}

net::awaitable<bool> Limiter::takeShared(std::string host, RequestClass cls, Entry& e) {
    for (;;) {
        auto s = e.state.status(clock_->now());
        SharedTake take;
        take.window = kGuessedWindow;
        if (s.quota && s.window && *s.window > 0) {
            // The fleet spends one shared count of the announced quota, less the reserve.
            take.quota = *s.quota - std::min(*s.quota, s.reserved);
            take.window = std::chrono::seconds(*s.window);
            take.announced = true;
        } else {
            take.quota = static_cast<std::uint64_t>(
                std::max(1.0, std::floor(s.configuredRate * static_cast<double>(kGuessedWindow.count()))));
        }
        // Rounded up: the shared window may end a little after the Hub's, never before.
        if (s.resetIn)
            take.resetIn =
                std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(*s.resetIn * 1000.0)));
        take.paced = e.state.sharedOutage() || e.state.sharedResuming();
        auto wait = co_await shared_->take(host, cls, take);
        setSharedOutage(!wait);
        if (!wait) co_return false;
        if (wait->count() == 0) co_return true;
        util::logger("ratelimit")
            ->debug("shared budget spent, waiting host={} class={} wait_s={:.3f}", host, className(cls),
                    std::chrono::duration<double>(*wait).count());
        // Cancellation throws operation_aborted out of the wait, as documented for acquire().
        net::steady_timer timer(executor_, *wait);
        co_await timer.async_wait(net::use_awaitable);
    }
}

void Limiter::setSharedOutage(bool outage) {
    // One store for every host and class: when it fails for one, the others cannot count on it either.
    if (outage == sharedOutage_) return;
    sharedOutage_ = outage;
    auto now = clock_->now();
    for (auto& [key, e] : entries_) {
        e->state.setSharedOutage(now, outage);
        e->queue.wakeHead();
    }
}

void Limiter::setSharedBudget(std::unique_ptr<SharedBudget> shared) {
    shared_ = std::move(shared);
}

net::awaitable<void> Limiter::acquireBytes(std::size_t n) {
    if (config_.bandwidth == 0) co_return;
    co_await bytesQueue_->wait(executor_, *clock_, [this, n](TimePoint now) -> std::optional<Duration> {
        // The cap may have been lifted while this transfer waited.
        if (config_.bandwidth == 0) return std::nullopt;
        auto amount = static_cast<double>(n);
        if (bytesBucket_.tryTake(now, amount)) {
            bytesTaken_ += n;
            return std::nullopt;
        }
        return bytesBucket_.timeUntilAvailable(now, amount);
    });
}

void Limiter::observe(std::string_view host, RequestClass cls, int status, std::string_view rateLimitHeader,
                      std::string_view policyHeader, std::string_view retryAfterHeader, bool cacheHit) {
    if (cls == RequestClass::Other) return;
    Entry& e = entry(host, cls);
    auto o = makeObservation(cls, status, rateLimitHeader, policyHeader, retryAfterHeader,
                             std::chrono::system_clock::now(), cacheHit);
    auto jitter = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    auto now = clock_->now();
    bool wasPaused = e.state.status(now).pausedFor > 0;
    e.state.observe(now, o, jitter);
    auto s = e.state.status(now);
    if (status == 429) {
        util::logger("ratelimit")
            ->warn("rate limited host={} class={} paused_for_s={:.3f} count_429={}", host, className(cls),
                   s.pausedFor, s.count429);
    } else if (!wasPaused && s.pausedFor > 0) {
        util::logger("ratelimit")
            ->info("budget spent, pausing host={} class={} paused_for_s={:.3f}", host, className(cls),
                   s.pausedFor);
    }
    e.queue.wakeHead();
}

void Limiter::setLimits(const LimiterConfig& config) {
    config_ = config;
    auto now = clock_->now();
    for (auto& [key, e] : entries_) {
        e->state.setLimits(now, limitsFor(key.second));
        e->state.setReserve(config.reserve);
        e->queue.wakeHead();
    }
    bytesBucket_.setRate(now, static_cast<double>(config.bandwidth));
    bytesBucket_.setBurst(now, bandwidthBurst(config.bandwidth));
    bytesQueue_->wakeHead();
}

LimiterStatus Limiter::snapshot() const {
    auto now = clock_->now();
    LimiterStatus s;
    for (const auto& [key, e] : entries_)
        s.classes.push_back(HostClassStatus{key.first, key.second, e->queue.size(), e->state.status(now)});
    s.reserve = config_.reserve;
    s.bandwidth.limit = config_.bandwidth;
    s.bandwidth.tokens = config_.bandwidth == 0 ? 0.0 : bytesBucket_.tokens(now);
    s.bandwidth.bytes = bytesTaken_;
    s.bandwidth.waiting = bytesQueue_->size();
    return s;
}

json Limiter::status() const {
    return toJson(snapshot());
}

json toJson(const LimiterStatus& status) {
    auto optional = [](const auto& v) -> json {
        if (v) return json(*v);
        return json(nullptr);
    };
    json classes = json::array();
    for (const auto& c : status.classes) {
        const auto& s = c.state;
        classes.push_back({{"host", c.host},
                           {"class", std::string(className(c.cls))},
                           {"rule", s.windowRule ? "window" : "rate"},
                           {"tokens", s.tokens},
                           {"rate", s.rate},
                           {"burst", s.burst},
                           {"configured_rate", s.configuredRate},
                           {"aimd_factor", s.aimdFactor},
                           {"remaining", optional(s.remaining)},
                           {"quota", optional(s.quota)},
                           {"window_s", optional(s.window)},
                           {"reset_in_s", optional(s.resetIn)},
                           {"paused_for_s", s.pausedFor},
                           {"probing", s.probing},
                           {"reserved", s.reserved},
                           {"in_flight", s.inFlight},
                           {"responses_429", s.count429},
                           {"requests", s.requests},
                           {"cache_hits", s.cacheHits},
                           {"waiting", c.waiting}});
    }
    return {{"reserve", status.reserve},
            {"classes", std::move(classes)},
            {"bandwidth",
             {{"limit_bps", status.bandwidth.limit},
              {"tokens", status.bandwidth.tokens},
              {"bytes", status.bandwidth.bytes},
              {"waiting", status.bandwidth.waiting}}}};
}

namespace {

// Label values escape backslash, double quote and newline (Prometheus text format 0.0.4).
std::string labelValue(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out.push_back('\\');
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out.push_back(c);
    }
    return out;
}

}  // namespace

std::string toPrometheus(const LimiterStatus& status) {
    std::string out;
    auto family = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
        for (const auto& c : status.classes) {
            out += fmt::format("{}{{host=\"{}\",class=\"{}\"}} {}\n", name, labelValue(c.host),
                               className(c.cls), value(c));
        }
    };
    family("hfwarm_ratelimit_tokens", "gauge", "Tokens in the request bucket.",
           [](const HostClassStatus& c) { return c.state.tokens; });
    family("hfwarm_ratelimit_rate", "gauge", "Requests per second the bucket refills.",
           [](const HostClassStatus& c) { return c.state.rate; });
    family("hfwarm_ratelimit_remaining", "gauge",
           "Requests the Hub last announced as remaining (-1: unknown).", [](const HostClassStatus& c) {
               return c.state.remaining ? static_cast<double>(*c.state.remaining) : -1.0;
           });
    family("hfwarm_ratelimit_paused_seconds", "gauge", "Seconds until the class resumes (0: not paused).",
           [](const HostClassStatus& c) { return c.state.pausedFor; });
    family("hfwarm_ratelimit_waiting", "gauge", "Requests waiting for a token.",
           [](const HostClassStatus& c) { return c.waiting; });
    family("hfwarm_ratelimit_requests_total", "counter", "Requests let through.",
           [](const HostClassStatus& c) { return c.state.requests; });
    family("hfwarm_ratelimit_429_total", "counter", "Responses with status 429.",
           [](const HostClassStatus& c) { return c.state.count429; });
    family("hfwarm_ratelimit_cache_hits_total", "counter",
           "Answers an HTTP cache gave instead of the Hub (no budget spent).",
           [](const HostClassStatus& c) { return c.state.cacheHits; });
    family("hfwarm_ratelimit_in_flight", "gauge", "Requests let through whose answer has not arrived.",
           [](const HostClassStatus& c) { return c.state.inFlight; });
    family("hfwarm_ratelimit_reserved", "gauge",
           "Requests of each announced fixed window left unspent (limits.reserve times the quota).",
           [](const HostClassStatus& c) { return c.state.reserved; });
    out += fmt::format(
        "# HELP hfwarm_ratelimit_reserve_ratio Share of each announced fixed window never spent "
        "(limits.reserve).\n"
        "# TYPE hfwarm_ratelimit_reserve_ratio gauge\n"
        "hfwarm_ratelimit_reserve_ratio {}\n",
        status.reserve);
    out += fmt::format(
        "# HELP hfwarm_bandwidth_limit_bytes_per_second Bandwidth cap (0: unlimited).\n"
        "# TYPE hfwarm_bandwidth_limit_bytes_per_second gauge\n"
        "hfwarm_bandwidth_limit_bytes_per_second {}\n"
        "# HELP hfwarm_bandwidth_bytes_total Bytes counted against the bandwidth cap.\n"
        "# TYPE hfwarm_bandwidth_bytes_total counter\n"
        "hfwarm_bandwidth_bytes_total {}\n",
        status.bandwidth.limit, status.bandwidth.bytes);
    return out;
}

}  // namespace hfwarm::ratelimit
