// The decisions of one (host, class) budget, with time passed in: when a request may go, how the
// Hub's headers re-seed it, how a 429 pauses the class and how it recovers. The Limiter wraps it with
// waiting; unit tests drive it directly.
//
// Two rules decide when a request may go:
// - Window: once the Hub has announced a "fixed window" policy (q per w) and a `RateLimit` count (r
//   left, t seconds to the reset), up to r - reserve - (requests in flight) may go at once, with no
//   pacing; the reserve is a share of q (limits.reserve). At 0 the class holds until the reset; then
//   one probe goes, and its answer opens the new window with what the Hub says remains.
// - Rate: before that, and for any other policy (a sliding window, or a policy without `w`), the
//   configured rate and burst, never faster than q/w nor than what remains spread over the time left.
//   Also while the budget is shared with other daemons through a store that does not answer
//   (setSharedOutage): they spend the same window unseen, so spending it at once would overspend it
//   several times over; the pace then also leaves the reserve unspent. When the store answers again
//   the pace goes on until the Hub's next announced reset, since the store never counted what was
//   sent during the outage and its count of the running window is short; the window rule then opens
//   the fresh window, which the store counts whole.
// In both, r = 0 holds the class until the reset and a 429 pauses it.
#pragma once

#include "hfwarm/ratelimit/headers.hpp"
#include "hfwarm/ratelimit/limits.hpp"
#include "hfwarm/ratelimit/request_class.hpp"
#include "hfwarm/ratelimit/token_bucket.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>

namespace hfwarm::ratelimit {

// Tuning of the reactions; the defaults are what the daemon uses.
struct ClassPolicy {
    // 429 without a usable reset time: pause base * 2^(n-1), capped, times a jitter in [0.5, 1].
    std::chrono::milliseconds backoffBase{1'000};
    std::chrono::milliseconds backoffCap{60'000};
    // Shortest pause after a 429, so that `t=0` or `Retry-After: 0` cannot cause a burst of retries.
    std::chrono::milliseconds minPause{500};
    // Longest pause, whatever the server says: the Hub's windows are 5 minutes.
    std::chrono::seconds maxPause{3'600};
    // Jitter added to a pause the server timed (t or Retry-After): up to min(this, a tenth of the
    // pause), so that clients sharing one IP do not all return at the same instant.
    std::chrono::milliseconds resetJitter{1'000};
    // A probe whose response is never observed (the request failed and nobody reported status 0)
    // stops blocking the class after this long: the Hub's own HEAD timeout in HFH is 10 s.
    std::chrono::seconds probeTimeout{10};
    // A request let through but never reported (observe) stops counting as in flight after this
    // long: longer than any request the daemon lets run.
    std::chrono::seconds inFlightTimeout{120};
    // Without any rate-limit header: on a 429 the rate is multiplied by `decrease` (down to
    // `minFactor` of the configured rate); each other response adds `increase` of it back.
    double decrease = 0.5;
    double minFactor = 1.0 / 64;
    double increase = 0.02;
};

// What one response said, already reduced to this class's bucket.
struct Observation {
    int status = 0;  // HTTP status; 0 = the request failed without a response
    std::optional<RateLimitItem> rateLimit;
    std::optional<RateLimitPolicyItem> policy;
    std::optional<std::chrono::seconds> retryAfter;
    // Served by an HTTP cache in front of the Hub: the Hub counted nothing, and the headers are a
    // copy of an older answer, so they neither re-seed nor pause the class.
    bool cacheHit = false;

    bool hasHeaders() const { return rateLimit || policy || retryAfter; }
};

// Parses the three headers (empty = absent) and keeps the items for `cls`'s bucket; items of other
// buckets and malformed headers are dropped.
Observation makeObservation(RequestClass cls, int status, std::string_view rateLimitHeader,
                            std::string_view policyHeader, std::string_view retryAfterHeader,
                            std::chrono::system_clock::time_point now, bool cacheHit = false);

// Whether a response came from an HTTP cache rather than from the Hub (empty = header absent): an
// `Age` above 0 (RFC 9111 section 5.1), nginx's `X-Cache-Status: HIT`, or Varnish's and Squid's
// `X-Cache: HIT` (Squid writes `HIT from <host>`). Case does not matter.
bool servedFromCache(std::string_view age, std::string_view cacheStatus, std::string_view cache);

// Everything about one class that status and metrics show. Durations are seconds from `now`.
struct ClassStatus {
    bool windowRule = false;  // the window rule decides; else the rate rule (see the top of this file)
    double tokens = 0;        // window rule: requests that may still go in this window; else tokens
    double rate = 0;          // rate rule: requests per second after AIMD; window rule: q/w, for reference
    double burst = 0;
    double configuredRate = 0;
    double aimdFactor = 1;                   // < 1 after 429s without headers
    std::optional<std::uint64_t> remaining;  // last announced r
    std::optional<std::uint64_t> quota;      // last announced q
    std::optional<std::uint64_t> window;     // last announced w, seconds
    std::optional<double> resetIn;           // until the announced window resets; nullopt once past
    double pausedFor = 0;                    // 0 when not paused
    bool probing = false;                    // at the start and after a 429: one probe at a time
    double reserve = kDefaultReserve;        // limits.reserve
    std::uint64_t reserved = 0;  // requests of each window left unspent: reserve * q, rounded down
    std::uint64_t inFlight = 0;  // let through, answer not seen yet
    std::uint64_t count429 = 0;
    std::uint64_t requests = 0;
    std::uint64_t cacheHits = 0;  // answers a cache gave instead of the Hub
};

class ClassState {
  public:
    struct Decision {
        bool go = false;     // the request may be sent now; a token was taken
        bool probe = false;  // it is the single probe (first request, or after a 429 pause)
        Duration wait{};     // otherwise: ask again after this long (or when woken)
    };

    // Starts with a single probe: until the first answer arrives nothing is known about the budget
    // (another client behind the same IP may have spent it), so a burst could only earn 429s.
    ClassState(ClassLimits limits, TimePoint now, ClassPolicy policy = {});

    // Asks to send one request now.
    Decision tryAcquire(TimePoint now);

    // Feeds a response (or a failure without one). `jitter` is a uniform random number in [0, 1).
    void observe(TimePoint now, const Observation& observation, double jitter);

    // New configured rate and burst; an announced fixed window still takes precedence over them.
    void setLimits(TimePoint now, ClassLimits limits);
    const ClassLimits& limits() const { return limits_; }
    // The share of an announced fixed window never spent, 0 to 0.9 (clamped).
    void setReserve(double reserve);
    // Whether the budget is shared with other daemons (the `redis` store) whose spending this class
    // cannot see now: true when the store failed to answer, false once it answers again. While true
    // the rate rule paces the class, re-seeded at once from the last announcement. After false, if
    // the class sent anything during the outage, the pace goes on until the Hub's next announced
    // reset (the store did not count those requests in the running window); the window rule then
    // opens the fresh window with its probe.
    void setSharedOutage(TimePoint now, bool outage);
    bool sharedOutage() const { return sharedOutage_; }
    // The store answers again, and the pace lasts until the Hub's next reset (see setSharedOutage).
    bool sharedResuming() const { return sharedResuming_; }
    // Takes back a request tryAcquire() let go that will not be sent after all: it stops counting as
    // in flight and as sent, and a probe lets the next request probe instead. A token the rate rule
    // took is not given back: the Limiter withdraws only what the window rule let go.
    void withdraw(TimePoint now);

    ClassStatus status(TimePoint now) const;

  private:
    enum class Phase { Open, Paused, Probing };

    void advance(TimePoint now);
    void spendUnanswered();
    void grant(TimePoint now, Decision& d);
    bool windowRule() const;
    // Requests of the Hub's running window that the shared store did not count: during an outage,
    // and after it until the next reset.
    bool sharedUnseen() const { return sharedOutage_ || sharedResuming_; }
    std::uint64_t reserved() const;
    std::optional<std::uint64_t> remainingAt(TimePoint now) const;
    double allowance(TimePoint now) const;
    std::uint64_t inFlightAt(TimePoint now) const;
    Duration holdInWindow(TimePoint now) const;
    void applyRate(TimePoint now);
    void paceToReset(TimePoint now);
    bool applyAnnouncement(TimePoint now, const Observation& o);
    void on429(TimePoint now, const Observation& o, bool current, double jitter);
    void pauseUntil(TimePoint until, bool probeAfter);
    Duration untilReset(TimePoint now) const;
    Duration capped(std::chrono::seconds told) const;
    Duration capped(std::uint64_t toldSeconds) const;
    Duration withJitter(Duration pause, double jitter) const;

    ClassLimits limits_;
    double reserve_ = kDefaultReserve;
    ClassPolicy policy_;
    TokenBucket bucket_;
    Phase phase_ = Phase::Probing;
    TimePoint pausedUntil_{};
    bool probeAfterPause_ = false;
    bool probeOut_ = false;
    TimePoint probeDeadline_{};
    unsigned backoffStep_ = 0;
    double aimdFactor_ = 1.0;
    // The rate rule's pace as the Hub's last announcement allows it; nullopt until it said anything.
    std::optional<double> announcedRate_;
    // The lowest r announced in the current window (answers arrive out of order; a fixed window's
    // count only falls); after a reset, the quota.
    std::optional<std::uint64_t> remaining_;
    std::optional<std::uint64_t> quota_;
    std::optional<std::uint64_t> window_;
    // When the announced window ends, as tightly as the whole-second `t` of several responses
    // pins it down; `rolled_` once that time has passed.
    std::optional<TimePoint> resetAt_;
    bool rolled_ = false;
    // The last policy named a fixed window.
    bool fixedWindow_ = false;
    // The shared store is configured but does not answer (setSharedOutage).
    bool sharedOutage_ = false;
    // The store answers again, but its count of the Hub's running window lacks what the class sent
    // while it did not; cleared when that window resets.
    bool sharedResuming_ = false;
    std::uint64_t requestsAtOutage_ = 0;  // requests_ when the outage began
    // When each request still in flight was let through, oldest first.
    std::deque<TimePoint> inFlight_;
    std::uint64_t count429_ = 0;
    std::uint64_t requests_ = 0;
    std::uint64_t cacheHits_ = 0;
};

}  // namespace hfwarm::ratelimit
