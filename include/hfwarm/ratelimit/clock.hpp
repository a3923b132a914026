// Time as the limiter sees it: the steady clock in the daemon, a clock the test moves in the tests.
#pragma once

#include "hfwarm/ratelimit/token_bucket.hpp"

#include <functional>
#include <memory>

namespace hfwarm::ratelimit {

class LimiterClock {
  public:
    virtual ~LimiterClock() = default;

    virtual TimePoint now() const = 0;

    // The steady-clock time at which a waiter whose turn comes at `at` (this clock's time) wakes to
    // ask again. The steady clock returns `at`; a clock that moves otherwise returns max() for a time
    // still ahead and calls the function given to onAdvance() each time it moves.
    virtual TimePoint wakeAt(TimePoint at) const { return at; }

    // Registers what to call when the clock moves on its own; an empty function unregisters.
    virtual void onAdvance(std::function<void()>) {}
};

// std::chrono::steady_clock.
std::shared_ptr<LimiterClock> steadyClock();

}  // namespace hfwarm::ratelimit
