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

    // Follows a server-announced fixed window: `quota` requests per `window`, of which `remaining`
    // are left for the `resetIn` until the window resets. The rate becomes the lower of quota/window
    // and remaining/resetIn, and the tokens are cut so that what the bucket holds plus what it
    // refills before the reset does not exceed `remaining`. A zero window leaves the rate unchanged.
    void reseed(TimePoint now, std::uint64_t quota, std::chrono::seconds window, std::uint64_t remaining,
                Duration resetIn);

    // Changes the rate from now on; tokens accrued so far are kept.
    void setRate(TimePoint now, double rate);
    // Changes the burst; tokens above the new burst are dropped.
    void setBurst(TimePoint now, double burst);
    // Lowers the tokens to at most `max` (never raises them).
    void limitTokens(TimePoint now, double max);
    // Raises the tokens to at least `min` (capped at the burst; never lowers them).
    void ensureTokens(TimePoint now, double min);

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
