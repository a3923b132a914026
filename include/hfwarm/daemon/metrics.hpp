// The `metrics` method's Prometheus text: entries by state, the engine's counters and request
// latency, and the limiter's buckets.
#pragma once

#include "hfwarm/protocol/messages.hpp"
#include "hfwarm/ratelimit/limiter.hpp"
#include "hfwarm/transfer/engine.hpp"

#include <string>
#include <vector>

namespace hfwarm::daemon {

// `engine` and `limiter` are null when offline.
std::string metricsText(const std::vector<protocol::EntryStatus>& statuses, const transfer::Engine* engine,
                        const ratelimit::Limiter* limiter);

}  // namespace hfwarm::daemon
