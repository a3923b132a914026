#include "hfwarm/protocol/summary.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace hfwarm::protocol {

std::string summaryLine(const std::vector<EntryStatus>& entries) {
    constexpr std::array kStates = {EntryState::Ready,  EntryState::Failed,    EntryState::Missing,
                                    EntryState::Queued, EntryState::Resolving, EntryState::Downloading,
                                    EntryState::Paused, EntryState::Unknown};
    std::string text = fmt::format("{} {}:", entries.size(), entries.size() == 1 ? "entry" : "entries");
    const char* separator = " ";
    for (auto state : kStates) {
        auto count = std::count_if(entries.begin(), entries.end(),
                                   [state](const EntryStatus& e) { return e.state == state; });
        if (count == 0 && state != EntryState::Ready && state != EntryState::Failed) continue;
        text += fmt::format("{}{} {}", separator, count, stateName(state));
        separator = ", ";
    }
    auto optionalNotReady = std::count_if(entries.begin(), entries.end(), [](const EntryStatus& e) {
        return e.optional && e.state != EntryState::Ready;
    });
    if (optionalNotReady > 0) text += fmt::format("; {} optional not ready", optionalNotReady);
    return text;
}

}  // namespace hfwarm::protocol
