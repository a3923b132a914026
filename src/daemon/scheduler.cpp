#include "hfwarm/daemon/scheduler.hpp"

#include <algorithm>

namespace hfwarm::daemon {

namespace {

// First retry of a failed entry; doubled per failure up to the refresh interval.
constexpr std::chrono::seconds kFirstRetry{30};

}  // namespace

Scheduler::Scheduler(std::chrono::seconds refresh, std::uint64_t seed) : refresh_(refresh), rng_(seed) {}

bool Scheduler::takeDue(const manifest::RepoRef& key, Clock::time_point now) {
    auto& s = schedules_[key];
    if (s.started || s.due > now) return false;
    s.started = true;
    return true;
}

Scheduler::Clock::time_point Scheduler::nextDue() const {
    auto next = Clock::time_point::max();
    for (const auto& [key, s] : schedules_)
        if (!s.started) next = std::min(next, s.due);
    return next;
}

Scheduler::Clock::time_point Scheduler::finished(const manifest::RepoRef& key, bool ready,
                                                 Clock::time_point now) {
    auto it = schedules_.find(key);
    if (it == schedules_.end()) return Clock::time_point::max();
    auto& s = it->second;
    s.started = false;
    if (ready) {
        s.failures = 0;
        s.due = now + refresh_;
        return s.due;
    }
    s.failures += 1;
    auto delay = kFirstRetry * (1u << std::min(s.failures - 1, 10u));
    auto capped = std::min<Clock::duration>(delay, refresh_);
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    s.due = now + std::chrono::duration_cast<Clock::duration>(capped * jitter(rng_));
    return s.due;
}

void Scheduler::dueNow(const manifest::RepoRef& key, Clock::time_point now) {
    auto& s = schedules_[key];
    if (!s.started) s.due = now;
}

void Scheduler::reconcile(const manifest::Manifest& before, const manifest::Manifest& after,
                          Clock::time_point now) {
    std::unordered_map<manifest::RepoRef, const manifest::Entry*> old;
    for (const auto& e : before.entries) old.emplace(e.repo, &e);
    std::unordered_map<manifest::RepoRef, Schedule> kept;
    for (const auto& e : after.entries) {
        auto was = old.find(e.repo);
        auto schedule = schedules_.find(e.repo);
        if (was == old.end() || schedule == schedules_.end()) continue;
        Schedule s = schedule->second;
        if (!was->second->sameSelections(e) && !s.started) s.due = now;
        kept.emplace(e.repo, s);
    }
    schedules_ = std::move(kept);
}

double Scheduler::speed(const manifest::RepoRef& key) const {
    auto it = schedules_.find(key);
    return it == schedules_.end() ? 0 : it->second.speed;
}

void Scheduler::recordBytes(const manifest::RepoRef& key, std::uint64_t bytesDone, double seconds) {
    auto& s = schedules_[key];
    double delta = bytesDone >= s.lastBytes ? static_cast<double>(bytesDone - s.lastBytes) : 0;
    s.speed = seconds > 0 ? 0.5 * s.speed + 0.5 * delta / seconds : 0;
    if (s.speed < 1) s.speed = 0;
    s.lastBytes = bytesDone;
}

}  // namespace hfwarm::daemon
