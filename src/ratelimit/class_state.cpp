#include "hfwarm/ratelimit/class_state.hpp"

#include <algorithm>
#include <cmath>
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
                            std::chrono::system_clock::time_point now, bool cacheHit) {
    Observation o;
    o.status = status;
    o.cacheHit = cacheHit;
    std::string_view bucket = className(cls);
    if (!rateLimitHeader.empty()) o.rateLimit = pick(parseRateLimit(rateLimitHeader), bucket);
    if (!policyHeader.empty()) o.policy = pick(parseRateLimitPolicy(policyHeader), bucket);
    if (!retryAfterHeader.empty()) o.retryAfter = parseRetryAfter(retryAfterHeader, now);
    return o;
}

bool servedFromCache(std::string_view age, std::string_view cacheStatus, std::string_view cache) {
    auto trimmed = [](std::string_view v) {
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        return v;
    };
    // The first word: `HIT`, `HIT from proxy`, `HIT, MISS` (layered caches) all start with it.
    auto hit = [&](std::string_view v) {
        v = trimmed(v);
        auto end = v.find_first_of(" ,;");
        v = v.substr(0, end);
        return v.size() == 3 && (v[0] | 0x20) == 'h' && (v[1] | 0x20) == 'i' && (v[2] | 0x20) == 't';
    };
    age = trimmed(age);
    bool aged = !age.empty() && age.find_first_not_of("0123456789") == std::string_view::npos &&
                age.find_first_not_of('0') != std::string_view::npos;
    return aged || hit(cacheStatus) || hit(cache);
}

ClassState::ClassState(ClassLimits limits, TimePoint now, ClassPolicy policy)
    : limits_(limits), policy_(policy), bucket_(limits.rate, limits.burst, now) {}

void ClassState::applyRate(TimePoint now) {
    double base = announcedRate_ ? std::min(*announcedRate_, limits_.rate) : limits_.rate;
    bucket_.setRate(now, base * aimdFactor_);
}

bool ClassState::windowRule() const {
    return fixedWindow_ && quota_ && window_ && resetAt_ && !sharedUnseen();
}

std::uint64_t ClassState::reserved() const {
    if (!quota_) return 0;
    // Rounded down, so that a tiny quota is not reserved whole; the epsilon keeps 0.1 * 3000 at 300.
    return static_cast<std::uint64_t>(std::floor(static_cast<double>(*quota_) * reserve_ + 1e-9));
}

std::optional<std::uint64_t> ClassState::remainingAt(TimePoint now) const {
    // Past the announced reset the next window starts with the whole quota.
    if (resetAt_ && !rolled_ && now >= *resetAt_) return quota_;
    return remaining_;
}

std::uint64_t ClassState::inFlightAt(TimePoint now) const {
    return static_cast<std::uint64_t>(std::count_if(inFlight_.begin(), inFlight_.end(), [&](TimePoint at) {
        return at + policy_.inFlightTimeout > now;
    }));
}

double ClassState::allowance(TimePoint now) const {
    auto left = remainingAt(now).value_or(0);
    return static_cast<double>(left) - static_cast<double>(reserved()) - static_cast<double>(inFlightAt(now));
}

Duration ClassState::holdInWindow(TimePoint now) const {
    // Until the window resets, or until the oldest request in flight stops counting; an answer that
    // frees some of the budget wakes the waiters before either.
    Duration wait = Duration::max();
    if (resetAt_ && !rolled_ && *resetAt_ > now) wait = *resetAt_ - now;
    if (!inFlight_.empty())
        wait = std::min<Duration>(wait, inFlight_.front() + policy_.inFlightTimeout - now);
    if (wait == Duration::max()) wait = std::chrono::seconds(window_.value_or(1));
    return std::max(wait, Duration{1});
}

void ClassState::spendUnanswered() {
    // The Hub counts every request that reaches it: one whose answer never came probably spent one.
    if (remaining_ && *remaining_ > 0) --*remaining_;
}

void ClassState::advance(TimePoint now) {
    while (!inFlight_.empty() && inFlight_.front() + policy_.inFlightTimeout <= now) {
        inFlight_.pop_front();
        spendUnanswered();
    }
    if (resetAt_ && !rolled_ && now >= *resetAt_) {
        rolled_ = true;
        remaining_ = quota_;
        // The store counts all of the fresh window: the shared rule resumes with it.
        sharedResuming_ = false;
        if (windowRule()) {
            // A new fixed window starts with the whole quota; one probe learns where it really
            // stands (another client may have spent some) before the rest goes.
            if (phase_ == Phase::Paused) {
                probeAfterPause_ = true;
            } else {
                phase_ = Phase::Probing;
                probeOut_ = false;
            }
        } else {
            // The rate rule: the next window starts paced at the configured rate, at most q/w, and
            // one request may go at once.
            announcedRate_.reset();
            if (quota_ && window_)
                announcedRate_ = static_cast<double>(*quota_) / static_cast<double>(*window_);
            applyRate(now);
            bucket_.ensureTokens(now, 1.0);
        }
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
    if (windowRule()) {
        if (allowance(now) >= 1.0) {
            grant(now, d);
        } else {
            d.wait = holdInWindow(now);
        }
        return d;
    }
    if (bucket_.tryTake(now)) {
        grant(now, d);
        return d;
    }
    d.wait = bucket_.timeUntilAvailable(now);
    // The rate may rise when the announced window resets.
    if (resetAt_ && !rolled_) d.wait = std::min(d.wait, *resetAt_ - now);
    return d;
}

void ClassState::grant(TimePoint now, Decision& d) {
    ++requests_;
    inFlight_.push_back(now);
    d.go = true;
    if (phase_ == Phase::Probing) {
        probeOut_ = true;
        probeDeadline_ = now + policy_.probeTimeout;
        d.probe = true;
    }
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
        fixedWindow_ = o.policy->kind == "fixed window";
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
    // response took to arrive; the earliest is the tightest. An end well before the known one is a
    // late answer from a window already over: it says nothing about the current one.
    if (resetAt_ && told + kSameWindow <= *resetAt_) return false;
    if (resetAt_ && told < *resetAt_ + kSameWindow) {
        if (rolled_) return false;
        resetAt_ = std::min(*resetAt_, told);
        // Answers arrive out of order; within one window the count only falls.
        remaining_ = std::min(remaining_.value_or(rl.remaining), rl.remaining);
    } else {
        resetAt_ = told;
        rolled_ = false;
        remaining_ = rl.remaining;
    }
    if (!windowRule()) paceToReset(now);
    return true;
}

void ClassState::paceToReset(TimePoint now) {
    // The rate rule: never faster than configured, than q/w, nor than what remains over the time left.
    double leftSeconds = toSeconds(*resetAt_ - now);
    double rate = limits_.rate;
    if (quota_ && window_)
        rate = std::min(rate, static_cast<double>(*quota_) / static_cast<double>(*window_));
    auto left = static_cast<double>(*remaining_);
    // A fixed window paced because the fleet's store is down still keeps its reserve; it also
    // absorbs what the other daemons send before their answers tell this one.
    if (sharedUnseen() && fixedWindow_) left = std::max(0.0, left - static_cast<double>(reserved()));
    if (leftSeconds > 0) rate = std::min(rate, left / leftSeconds);
    announcedRate_ = rate;
    applyRate(now);
    bucket_.limitTokens(now, std::max(0.0, left - rate * leftSeconds));
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
    // Which request this answers is not known; the oldest stops counting as in flight (and is the
    // first the timeout would drop).
    if (!inFlight_.empty()) inFlight_.pop_front();
    if (o.status == 0) {
        // No response: the probe (if this was it) tells nothing; let another go.
        spendUnanswered();
        if (phase_ == Phase::Probing) probeOut_ = false;
        return;
    }
    if (o.cacheHit) {
        // The Hub never saw the request: its token is given back (under the window rule the end of
        // its flight did that), and the copied headers are ignored.
        ++cacheHits_;
        if (!windowRule()) bucket_.refund(now);
        if (phase_ == Phase::Probing) phase_ = Phase::Open;
        return;
    }
    bool current = applyAnnouncement(now, o);
    if (o.status == 429) {
        on429(now, o, current, jitter);
        return;
    }
    backoffStep_ = 0;
    // A late answer from a window already over is not the probe's.
    if (phase_ == Phase::Probing && current) phase_ = Phase::Open;
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

void ClassState::setSharedOutage(TimePoint now, bool outage) {
    if (outage == sharedOutage_) return;
    advance(now);
    bool wasWindowRule = windowRule();
    sharedOutage_ = outage;
    if (outage) requestsAtOutage_ = requests_;
    if (!outage) {
        // What the class sent during the outage is in the Hub's window but not in the store's count:
        // it stays paced until the Hub's next reset.
        sharedResuming_ = requests_ > requestsAtOutage_;
        return;
    }
    if (!wasWindowRule) return;
    // The bucket sat unused under the window rule, full to the burst: seed it as an answer would.
    if (resetAt_ && !rolled_ && remaining_) {
        paceToReset(now);
    } else if (quota_ && window_) {
        // The announced window is over: the next starts paced at q/w at most, one request at once.
        announcedRate_ = static_cast<double>(*quota_) / static_cast<double>(*window_);
        applyRate(now);
        bucket_.limitTokens(now, 1.0);
    }
}

void ClassState::withdraw(TimePoint now) {
    advance(now);
    // The newest flight is the one let go last; which one it is does not matter, they are alike.
    if (!inFlight_.empty()) inFlight_.pop_back();
    if (requests_ > 0) --requests_;
    if (phase_ == Phase::Probing) probeOut_ = false;
}

void ClassState::setReserve(double reserve) {
    reserve_ = std::isfinite(reserve) ? std::clamp(reserve, 0.0, 0.9) : kDefaultReserve;
}

ClassStatus ClassState::status(TimePoint now) const {
    ClassStatus s;
    s.windowRule = windowRule();
    s.tokens = bucket_.tokens(now);
    s.rate = bucket_.rate();
    s.burst = bucket_.burst();
    s.configuredRate = limits_.rate;
    s.aimdFactor = aimdFactor_;
    // After the reset, what the next window starts with.
    s.remaining = remainingAt(now);
    s.quota = quota_;
    s.window = window_;
    if (resetAt_ && !rolled_ && *resetAt_ > now) {
        s.resetIn = toSeconds(*resetAt_ - now);
    } else if (resetAt_ && !rolled_ && quota_ && window_ && !s.windowRule) {
        s.rate = std::min(limits_.rate, static_cast<double>(*quota_) / static_cast<double>(*window_)) *
                 aimdFactor_;
    }
    if (s.windowRule) {
        s.tokens = std::max(0.0, allowance(now));
        s.rate = static_cast<double>(*quota_) / static_cast<double>(*window_);
    }
    s.reserve = reserve_;
    s.reserved = reserved();
    s.inFlight = inFlightAt(now);
    s.cacheHits = cacheHits_;
    if (phase_ == Phase::Paused && pausedUntil_ > now) s.pausedFor = toSeconds(pausedUntil_ - now);
    s.probing = phase_ == Phase::Probing || (phase_ == Phase::Paused && probeAfterPause_);
    s.count429 = count429_;
    s.requests = requests_;
    return s;
}

}  // namespace hfwarm::ratelimit
