// A token bucket driven by time passed in by the caller, so that tests need no clock and no sleep.
#pragma once

#include <chrono>
#include <cstdint>

namespace hfwarm::ratelimit {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

// Holds up to `burst` tokens and refills at `rate` tokens per second (rate 0: no refill). A take of
// n tokens is allowed once the bucket holds min(n, burst), and may leave it negative: a chunk larger
// than the burst then waits for the debt to be repaid, which keeps the long-run rate exact. Time that
// goes backwards is ignored. Negative, NaN or infinite rates and bursts are treated as 0.
class TokenBucket {
  public:
    // Starts full.
    TokenBucket(double rate, double burst, TimePoint now);

    // Takes n tokens if allowed now; returns whether it did.
    bool tryTake(TimePoint now, double n = 1.0);

    // How long until a take of n would be allowed: zero if it is now, Duration::max() if never
    // (rate 0 and too few tokens).
    Duration timeUntilAvailable(TimePoint now, double n = 1.0) const;

    // Changes the rate from now on; tokens accrued so far are kept.
    void setRate(TimePoint now, double rate);
    // Changes the burst; tokens above the new burst are dropped.
    void setBurst(TimePoint now, double burst);
    // Lowers the tokens to at most `max` (never raises them).
    void limitTokens(TimePoint now, double max);
    // Raises the tokens to at least `min` (capped at the burst; never lowers them).
    void ensureTokens(TimePoint now, double min);
    // Gives back n tokens taken for a request that cost nothing (capped at the burst).
    void refund(TimePoint now, double n = 1.0);

    double tokens(TimePoint now) const;
    double rate() const { return rate_; }
    double burst() const { return burst_; }

  private:
    void refill(TimePoint now);
    double tokensAt(TimePoint now) const;

    double rate_;
    double burst_;
    double tokens_;
    TimePoint last_;
};

}  // namespace hfwarm::ratelimit
