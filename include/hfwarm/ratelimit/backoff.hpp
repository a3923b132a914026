// Exponential backoff with full jitter (the AWS architecture blog's "full jitter"), used by the
// transfer engine for network errors, timeouts and 5xx. Pure: the random generator is passed in.
#pragma once

#include <chrono>
#include <random>

namespace hfwarm::ratelimit {

struct Backoff {
    std::chrono::milliseconds base{500};
    std::chrono::milliseconds cap{30'000};
    unsigned maxAttempts = 5;

    // Whether another try is allowed after `attempt` failed tries.
    bool allows(unsigned attempt) const { return attempt < maxAttempts; }

    // The upper bound of the wait before retry number attempt+1: min(cap, base * 2^attempt).
    std::chrono::milliseconds ceiling(unsigned attempt) const;

    // A wait drawn uniformly from [0, ceiling(attempt)]. `rng` is any UniformRandomBitGenerator.
    template <class Rng>
    std::chrono::milliseconds delay(unsigned attempt, Rng& rng) const {
        std::uniform_int_distribution<std::chrono::milliseconds::rep> pick(0, ceiling(attempt).count());
        return std::chrono::milliseconds{pick(rng)};
    }
};

}  // namespace hfwarm::ratelimit
