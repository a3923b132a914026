#include "hfwarm/daemon/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hfwarm::daemon {

std::string metricsText(const std::vector<protocol::EntryStatus>& statuses, const transfer::Engine* engine,
                        const ratelimit::Limiter* limiter) {
    std::string text;
    auto add = [&](std::string_view name, std::string_view type, std::string_view help) {
        text += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    };
    add("hfwarm_entries", "gauge", "Manifest entries by state.");
    for (auto state :
         {protocol::EntryState::Queued, protocol::EntryState::Resolving, protocol::EntryState::Downloading,
          protocol::EntryState::Ready, protocol::EntryState::Failed, protocol::EntryState::Missing,
          protocol::EntryState::Paused}) {
        auto count = std::count_if(statuses.begin(), statuses.end(),
                                   [&](const protocol::EntryStatus& s) { return s.state == state; });
        text += fmt::format("hfwarm_entries{{state=\"{}\"}} {}\n", protocol::stateName(state), count);
    }
    if (engine) {
        const auto& c = engine->counters();
        add("hfwarm_bytes_fetched_total", "counter", "Body bytes received for blobs.");
        text += fmt::format("hfwarm_bytes_fetched_total {}\n", c.bytesFetched);
        add("hfwarm_files_downloaded_total", "counter", "Blobs downloaded, verified and published.");
        text += fmt::format("hfwarm_files_downloaded_total {}\n", c.filesDownloaded);
        add("hfwarm_files_reused_total", "counter", "Files whose blob was already in the cache.");
        text += fmt::format("hfwarm_files_reused_total {}\n", c.filesReused);
        add("hfwarm_hash_mismatches_total", "counter", "Downloads whose bytes did not hash to their name.");
        text += fmt::format("hfwarm_hash_mismatches_total {}\n", c.hashMismatches);
        add("hfwarm_retries_total", "counter", "Requests tried again after an error or a 429.");
        text += fmt::format("hfwarm_retries_total {}\n", c.retries);
        auto latency = engine->latency();
        add("hfwarm_request_duration_seconds", "histogram",
            "Time from a request being sent to its response headers.");
        for (std::size_t i = 0; i < latency.bounds.size(); ++i)
            text += fmt::format("hfwarm_request_duration_seconds_bucket{{le=\"{}\"}} {}\n", latency.bounds[i],
                                latency.counts[i]);
        text += fmt::format("hfwarm_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", latency.total);
        text += fmt::format("hfwarm_request_duration_seconds_sum {}\n", latency.sum);
        text += fmt::format("hfwarm_request_duration_seconds_count {}\n", latency.total);
    }
    if (limiter) text += ratelimit::toPrometheus(limiter->snapshot());
    return text;
}

}  // namespace hfwarm::daemon
