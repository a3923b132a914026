#include "hfwarm/ratelimit/token_bucket.hpp"

#include <algorithm>
#include <cmath>

namespace hfwarm::ratelimit {
namespace {

double sanitize(double v) {
    return std::isfinite(v) && v > 0 ? v : 0.0;
}

double seconds(Duration d) {
    return std::chrono::duration<double>(d).count();
}

}  // namespace

TokenBucket::TokenBucket(double rate, double burst, TimePoint now)
    : rate_(sanitize(rate)), burst_(sanitize(burst)), tokens_(burst_), last_(now) {}

double TokenBucket::tokensAt(TimePoint now) const {
    if (now <= last_) return tokens_;
    return std::min(burst_, tokens_ + rate_ * seconds(now - last_));
}

void TokenBucket::refill(TimePoint now) {
    if (now <= last_) return;
    tokens_ = tokensAt(now);
    last_ = now;
}

double TokenBucket::tokens(TimePoint now) const {
    return tokensAt(now);
}

bool TokenBucket::tryTake(TimePoint now, double n) {
    n = sanitize(n);
    refill(now);
    if (tokens_ < std::min(n, burst_)) return false;
    tokens_ -= n;
    return true;
}

Duration TokenBucket::timeUntilAvailable(TimePoint now, double n) const {
    double missing = std::min(sanitize(n), burst_) - tokensAt(now);
    if (missing <= 0) return Duration::zero();
    if (rate_ <= 0) return Duration::max();
    double wait = missing / rate_;
    // Beyond ~30 years the answer is "never" for every practical purpose, and the conversion to
    // nanoseconds below would overflow.
    if (wait > 1e9) return Duration::max();
    // Rounded up, so that a caller woken after this long finds the tokens there.
    auto d = std::chrono::ceil<Duration>(std::chrono::duration<double>(wait));
    return std::max(d, Duration{1});
}

void TokenBucket::setRate(TimePoint now, double rate) {
    refill(now);
    rate_ = sanitize(rate);
}

void TokenBucket::setBurst(TimePoint now, double burst) {
    refill(now);
    burst_ = sanitize(burst);
    tokens_ = std::min(tokens_, burst_);
}

void TokenBucket::limitTokens(TimePoint now, double max) {
    refill(now);
    tokens_ = std::min(tokens_, max);
}

void TokenBucket::ensureTokens(TimePoint now, double min) {
    refill(now);
    tokens_ = std::max(tokens_, std::min(min, burst_));
}

void TokenBucket::refund(TimePoint now, double n) {
    refill(now);
    tokens_ = std::min(burst_, tokens_ + sanitize(n));
}

}  // namespace hfwarm::ratelimit
