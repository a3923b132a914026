#include "faults.hpp"

namespace hfwarm::hubsim {

FaultInjector::FaultInjector(const FaultOptions& options, std::uint64_t seed)
    : options_(options), rng_(seed) {}

bool FaultInjector::fires(const FaultRule& rule, const char* kind, const std::string& key) {
    if (rule.first > 0) {
        unsigned& count = counts_[std::string(kind) + " " + key];
        if (count < rule.first) {
            ++count;
            return true;
        }
    }
    return rule.rate > 0.0 && std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < rule.rate;
}

std::uint64_t FaultInjector::offsetIn(std::uint64_t length) {
    return length == 0 ? 0 : std::uniform_int_distribution<std::uint64_t>(0, length - 1)(rng_);
}

bool FaultInjector::fail(const std::string& key) {
    return fires(options_.fail, "fail", key);
}

BodyFaults FaultInjector::planBody(const std::string& key, std::uint64_t length) {
    BodyFaults plan;
    if (length == 0) return plan;
    // --reset-after alone cuts every body longer than it: each resumed range moves that far.
    const bool resetAlways = options_.resetAfter && !options_.reset.enabled();
    if (resetAlways || fires(options_.reset, "reset", key)) {
        const std::uint64_t at = options_.resetAfter ? *options_.resetAfter : offsetIn(length);
        if (at < length) plan.resetAt = at;
    }
    // --stall alone stalls every body; with a rule, only the bodies it picks.
    if (options_.stallSeconds > 0 && (!options_.stall.enabled() || fires(options_.stall, "stall", key)))
        plan.stallAt = length / 2;
    if (fires(options_.corrupt, "corrupt", key)) plan.corruptAt = offsetIn(length);
    return plan;
}

}  // namespace hfwarm::hubsim
