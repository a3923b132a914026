#include "hfwarm/transfer/connection_policy.hpp"

#include <algorithm>

namespace hfwarm::transfer {

std::optional<double> judgedRate(const ConnectionSample& sample) {
    if (sample.bytes < kProbeBytes || sample.elapsed < kProbeTime) return std::nullopt;
    return static_cast<double>(sample.bytes) / std::chrono::duration<double>(sample.elapsed).count();
}

double loopBusy(LoopTimes times, std::chrono::nanoseconds elapsed) {
    const auto available = elapsed - times.waited;
    if (available <= std::chrono::nanoseconds::zero()) return 1.0;
    return std::clamp(
        std::chrono::duration<double>(times.ran).count() / std::chrono::duration<double>(available).count(),
        0.0, 1.0);
}

std::size_t wantedConnections(std::span<const ConnectionSample> samples, std::size_t current,
                              std::size_t share, double busy) {
    if (busy >= kBusyShare) return current;
    std::optional<double> fastest;
    for (const auto& sample : samples)
        if (auto rate = judgedRate(sample)) fastest = std::max(fastest.value_or(0.0), *rate);
    // Judged by the fastest connection: one slow starter on an uncapped link opens nothing.
    if (!fastest || *fastest >= kCappedRate) return current;
    return std::max(current, share);
}

bool keepAdded(double rateBefore, double rateAfter) {
    return rateAfter >= rateBefore * kMinGain;
}

void RateWindow::add(std::chrono::steady_clock::time_point at, std::uint64_t total) {
    samples_.push_back({at, total});
    // Keep one sample at or before the start of the span, so that the rate covers all of it.
    while (samples_.size() > 2 && at - samples_[1].at >= span_) samples_.pop_front();
}

std::optional<double> RateWindow::rate() const {
    if (samples_.size() < 2) return std::nullopt;
    const auto& first = samples_.front();
    const auto& last = samples_.back();
    if (last.at - first.at < kProbeTime) return std::nullopt;
    return static_cast<double>(last.total - first.total) /
           std::chrono::duration<double>(last.at - first.at).count();
}

std::size_t hostShare(std::size_t hostBudget, std::size_t files, std::size_t segments, std::uint64_t size) {
    const std::size_t even = std::max(hostBudget / std::max<std::size_t>(files, 1), kMinConnections);
    const auto pieces = static_cast<std::size_t>(std::max<std::uint64_t>(size / kMinPiece, 1));
    return std::max<std::size_t>(1, std::min({even, segments, pieces}));
}

bool useSegments(std::uint64_t size, std::uint64_t segmentMinSize, std::size_t segments) {
    return segments > 1 && size >= segmentMinSize && size >= 2 * kMinPiece;
}

std::uint64_t pieceLength(std::uint64_t available, std::uint64_t untaken, std::size_t connections,
                          std::uint64_t minPiece) {
    const std::uint64_t step =
        std::clamp<std::uint64_t>(untaken / (2 * std::max<std::size_t>(connections, 1)), minPiece, kMaxPiece);
    return available >= step + step / 2 ? step : available;
}

std::optional<ByteRange> requestRange(std::uint64_t pos, std::uint64_t end, std::uint64_t size) {
    if (pos == 0 && end == size && size <= kMaxRequest) return std::nullopt;
    return ByteRange{pos, std::min(end, pos + kMaxRequest) - 1};
}

}  // namespace hfwarm::transfer
