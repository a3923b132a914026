#include "hfwarm/ratelimit/class_state.hpp"

#include <algorithm>
#include <utility>

namespace hfwarm::ratelimit {
namespace {

// How close two announced reset times must be to belong to the same window: one second of rounding
// plus half a second of response latency. Windows are far longer (the Hub's are 300 s).
constexpr Duration kSameWindow = std::chrono::milliseconds{1'500};

double toSeconds(Duration d) {
    return std::chrono::duration<double>(d).count();
}

template <class Item>
std::optional<Item> pick(const std::optional<std::vector<Item>>& items, std::string_view bucket) {
    if (!items) return std::nullopt;
    for (const auto& item : *items)
        if (item.bucket == bucket) return item;
    return std::nullopt;
}

}  // namespace

Observation makeObservation(RequestClass cls, int status, std::string_view rateLimitHeader,
                            std::string_view policyHeader, std::string_view retryAfterHeader,
                            std::chrono::system_clock::time_point now) {
    Observation o;
    o.status = status;
    std::string_view bucket = className(cls);
    if (!rateLimitHeader.empty()) o.rateLimit = pick(parseRateLimit(rateLimitHeader), bucket);
    if (!policyHeader.empty()) o.policy = pick(parseRateLimitPolicy(policyHeader), bucket);
    if (!retryAfterHeader.empty()) o.retryAfter = parseRetryAfter(retryAfterHeader, now);
    return o;
}

ClassState::ClassState(ClassLimits limits, TimePoint now, ClassPolicy policy)
    : limits_(limits), policy_(policy), bucket_(limits.rate, limits.burst, now) {}

void ClassState::applyRate(TimePoint now) {
    double base = announcedRate_ ? *announcedRate_ : limits_.rate;
    bucket_.setRate(now, base * aimdFactor_);
}

void ClassState::advance(TimePoint now) {
    if (resetAt_ && !rolled_ && now >= *resetAt_) {
        // The announced window is over; the next one starts with the full quota, paced at
        // quota/window. One request may go at once to learn where the new window stands.
        rolled_ = true;
        remaining_ = quota_;
        announcedRate_.reset();
        if (quota_ && window_) announcedRate_ = static_cast<double>(*quota_) / static_cast<double>(*window_);
        applyRate(now);
        bucket_.ensureTokens(now, 1.0);
    }
    if (phase_ == Phase::Paused && now >= pausedUntil_) {
        phase_ = probeAfterPause_ ? Phase::Probing : Phase::Open;
        probeOut_ = false;
    }
    // A probe whose answer never came (the caller lost it) must not block the class for ever.
    if (phase_ == Phase::Probing && probeOut_ && now >= probeDeadline_) probeOut_ = false;
}

ClassState::Decision ClassState::tryAcquire(TimePoint now) {
    advance(now);
    Decision d;
    if (phase_ == Phase::Paused) {
        d.wait = pausedUntil_ - now;
        return d;
    }
    if (phase_ == Phase::Probing && probeOut_) {
        d.wait = probeDeadline_ - now;
        return d;
    }
    if (bucket_.tryTake(now)) {
        ++requests_;
        d.go = true;
        if (phase_ == Phase::Probing) {
            probeOut_ = true;
            probeDeadline_ = now + policy_.probeTimeout;
            d.probe = true;
        }
        return d;
    }
    d.wait = bucket_.timeUntilAvailable(now);
    // The rate may rise when the announced window resets.
    if (resetAt_ && !rolled_) d.wait = std::min(d.wait, *resetAt_ - now);
    return d;
}

Duration ClassState::untilReset(TimePoint now) const {
    if (!resetAt_ || rolled_ || *resetAt_ <= now) return Duration::zero();
    return *resetAt_ - now;
}

Duration ClassState::capped(std::chrono::seconds told) const {
    // Capped in seconds before the conversion to the clock's nanoseconds, which 15-digit values
    // would overflow.
    return std::clamp<std::chrono::seconds>(told, std::chrono::seconds{0}, policy_.maxPause);
}

Duration ClassState::capped(std::uint64_t toldSeconds) const {
    auto limit = static_cast<std::uint64_t>(policy_.maxPause.count());
    return std::chrono::seconds{static_cast<std::chrono::seconds::rep>(std::min(toldSeconds, limit))};
}

Duration ClassState::withJitter(Duration pause, double jitter) const {
    pause = std::clamp<Duration>(pause, Duration::zero(), policy_.maxPause);
    Duration spread = std::min<Duration>(policy_.resetJitter, pause / 10);
    return pause + std::chrono::duration_cast<Duration>(spread * std::clamp(jitter, 0.0, 1.0));
}

void ClassState::pauseUntil(TimePoint until, bool probeAfter) {
    if (phase_ == Phase::Paused) {
        pausedUntil_ = std::max(pausedUntil_, until);
        probeAfterPause_ = probeAfterPause_ || probeAfter;
    } else {
        phase_ = Phase::Paused;
        pausedUntil_ = until;
        probeAfterPause_ = probeAfter;
    }
    probeOut_ = false;
}

bool ClassState::applyAnnouncement(TimePoint now, const Observation& o) {
    if (o.policy) {
        quota_ = o.policy->quota;
        window_ = o.policy->window;
    }
    if (!o.rateLimit) {
        if (o.policy && (!resetAt_ || rolled_)) {
            // Only the long-run rate is known.
            announcedRate_ = static_cast<double>(o.policy->quota) / static_cast<double>(o.policy->window);
            applyRate(now);
        }
        return true;
    }
    const auto& rl = *o.rateLimit;
    auto told = now + capped(rl.resetIn);
    // t is whole seconds (rounded up by the Hub simulator, and for all we know by the Hub), so every
    // response of one window places its end within a second of the others, give or take the time the
    // response took to arrive; the earliest is the tightest.
    if (resetAt_ && told < *resetAt_ + kSameWindow) {
        // A late response of a window already over says nothing about the current one.
        if (rolled_) return false;
        resetAt_ = std::min(*resetAt_, told);
    } else {
        resetAt_ = told;
        rolled_ = false;
    }
    remaining_ = rl.remaining;
    Duration left = *resetAt_ - now;
    if (quota_ && window_) {
        bucket_.reseed(now, *quota_, std::chrono::seconds{static_cast<std::chrono::seconds::rep>(*window_)},
                       rl.remaining, left);
        announcedRate_ = bucket_.rate();
    } else {
        // Without a policy the quota is unknown: never go faster than configured.
        double leftSeconds = toSeconds(left);
        double rate = limits_.rate;
        if (leftSeconds > 0) rate = std::min(rate, static_cast<double>(rl.remaining) / leftSeconds);
        announcedRate_ = rate;
        bucket_.setRate(now, rate);
        bucket_.limitTokens(now, std::max(0.0, static_cast<double>(rl.remaining) - rate * leftSeconds));
    }
    if (aimdFactor_ < 1.0) applyRate(now);
    return true;
}

void ClassState::on429(TimePoint now, const Observation& o, bool current, double jitter) {
    ++count429_;
    // 429s of requests sent before the pause began say nothing new: they neither escalate the
    // backoff nor lower the rate again.
    bool escalate = phase_ != Phase::Paused;
    Duration pause{};
    if (o.rateLimit && o.rateLimit->remaining == 0) {
        // The headers are on every response; they explain a 429 only when r is 0
        // (hub-protocol.md 2.8). A 429 from a window already over (we resumed early) waits the
        // minimum pause.
        pause = current ? withJitter(untilReset(now), jitter) : Duration::zero();
    } else if (o.retryAfter) {
        pause = withJitter(capped(*o.retryAfter), jitter);
    } else if (!escalate) {
        // Nothing timed by the server and already backing off: the running pause stands.
        return;
    } else {
        ++backoffStep_;
        Duration ceiling = policy_.backoffBase;
        for (unsigned i = 1; i < backoffStep_ && ceiling < policy_.backoffCap; ++i) ceiling *= 2;
        ceiling = std::min<Duration>(ceiling, policy_.backoffCap);
        pause = std::chrono::duration_cast<Duration>(ceiling * (0.5 + 0.5 * std::clamp(jitter, 0.0, 1.0)));
        if (!o.hasHeaders()) {
            aimdFactor_ = std::max(policy_.minFactor, aimdFactor_ * policy_.decrease);
            applyRate(now);
        }
    }
    pause = std::clamp<Duration>(pause, policy_.minPause, policy_.maxPause);
    pauseUntil(now + pause, true);
}

void ClassState::observe(TimePoint now, const Observation& o, double jitter) {
    advance(now);
    if (o.status == 0) {
        // No response: the probe (if this was it) tells nothing; let another go.
        if (phase_ == Phase::Probing) probeOut_ = false;
        return;
    }
    bool current = applyAnnouncement(now, o);
    if (o.status == 429) {
        on429(now, o, current, jitter);
        return;
    }
    backoffStep_ = 0;
    if (phase_ == Phase::Probing) phase_ = Phase::Open;
    if (aimdFactor_ < 1.0) {
        aimdFactor_ = std::min(1.0, aimdFactor_ + policy_.increase);
        applyRate(now);
    }
    // The budget is spent: every waiter of the class holds until the window resets.
    if (current && o.rateLimit && o.rateLimit->remaining == 0)
        pauseUntil(now + withJitter(untilReset(now), jitter), false);
}

void ClassState::setLimits(TimePoint now, ClassLimits limits) {
    limits_ = limits;
    bucket_.setBurst(now, limits.burst);
    applyRate(now);
}

ClassStatus ClassState::status(TimePoint now) const {
    ClassStatus s;
    s.tokens = bucket_.tokens(now);
    s.rate = bucket_.rate();
    s.burst = bucket_.burst();
    s.configuredRate = limits_.rate;
    s.aimdFactor = aimdFactor_;
    s.remaining = remaining_;
    s.quota = quota_;
    s.window = window_;
    if (resetAt_ && !rolled_ && *resetAt_ > now) {
        s.resetIn = toSeconds(*resetAt_ - now);
    } else if (resetAt_ && !rolled_ && quota_ && window_) {
        // The window reset since the last response; show what the next one starts with.
        s.remaining = quota_;
        s.rate = static_cast<double>(*quota_) / static_cast<double>(*window_) * aimdFactor_;
    }
    if (phase_ == Phase::Paused && pausedUntil_ > now) s.pausedFor = toSeconds(pausedUntil_ - now);
    s.probing = phase_ == Phase::Probing || (phase_ == Phase::Paused && probeAfterPause_);
    s.count429 = count429_;
    s.requests = requests_;
    return s;
}

}  // namespace hfwarm::ratelimit
