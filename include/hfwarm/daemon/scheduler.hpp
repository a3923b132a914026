// When each entry is checked against the Hub next: the refresh interval after a success, a
// doubling retry delay after a failure, by entry key (RepoRef) across reloads. Pure: every call
// takes the time, so tests need no clock.
#pragma once

#include "hfwarm/manifest/manifest.hpp"

#include <chrono>
#include <cstdint>
#include <random>
#include <unordered_map>

namespace hfwarm::daemon {

class Scheduler {
  public:
    using Clock = std::chrono::steady_clock;

    // `refresh`: the interval between checks of a ready entry, and the longest retry delay.
    explicit Scheduler(std::chrono::seconds refresh, std::uint64_t seed = std::random_device{}());

    void setRefresh(std::chrono::seconds refresh) { refresh_ = refresh; }

    // Whether the entry should be warmed at `now`; a new key is due at once. Taking it marks it
    // started (not due again until finished() says when).
    bool takeDue(const manifest::RepoRef& key, Clock::time_point now);

    // The earliest time a known entry falls due, or Clock::time_point::max().
    Clock::time_point nextDue() const;

    // Records the end of a warm: the next check is a refresh interval away when it succeeded,
    // else 30 s doubled per failure in a row (at most the refresh interval), with 20 % jitter.
    // Returns the time of the next check; nothing happens for a key no longer scheduled.
    Clock::time_point finished(const manifest::RepoRef& key, bool ready, Clock::time_point now);

    // `sync`: due at `now`.
    void dueNow(const manifest::RepoRef& key, Clock::time_point now);

    // A reload: kept entries keep their schedule, an entry whose selections changed is due at
    // `now` (unless it is warming: the engine plans it again), removed entries are forgotten and
    // new ones are due at once.
    void reconcile(const manifest::Manifest& before, const manifest::Manifest& after, Clock::time_point now);

    // Bytes per second of an entry, smoothed over the ticks that report its bytes done.
    double speed(const manifest::RepoRef& key) const;
    void recordBytes(const manifest::RepoRef& key, std::uint64_t bytesDone, double seconds);

  private:
    struct Schedule {
        Clock::time_point due = Clock::time_point::min();
        bool started = false;
        unsigned failures = 0;
        std::uint64_t lastBytes = 0;
        double speed = 0;
    };

    std::chrono::seconds refresh_;
    std::mt19937_64 rng_;
    std::unordered_map<manifest::RepoRef, Schedule> schedules_;
};

}  // namespace hfwarm::daemon
