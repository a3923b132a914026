#include "hfwarm/cli/cli.hpp"

#include "hfwarm/protocol/summary.hpp"
#include "hfwarm/util/units.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <optional>

// What `status` and `wait` print: the table, the progress line and the wait verdict, as pure
// functions of a status result.
namespace hfwarm::cli {

namespace {

constexpr std::size_t kErrorColumnWidth = 48;

std::string shortCommit(const std::optional<std::string>& commit) {
    if (!commit || commit->empty()) return "-";
    return commit->substr(0, 7);
}

std::string truncate(std::string text, std::size_t width) {
    for (char& c : text) {
        if (c == '\n' || c == '\t') c = ' ';
    }
    if (text.size() <= width) return text;
    return text.substr(0, width - 3) + "...";
}

std::string formatSpeed(double bytesPerSecond) {
    if (bytesPerSecond < 1) return "-";
    return util::humanBytes(static_cast<std::uint64_t>(bytesPerSecond)) + "/s";
}

std::string formatDuration(double seconds) {
    auto total = static_cast<long long>(seconds + 0.5);
    if (total >= 3600) return fmt::format("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60);
    return fmt::format("{}:{:02}", total / 60, total % 60);
}

}  // namespace

bool isDone(const protocol::EntryStatus& entry) {
    return entry.state == protocol::EntryState::Ready;
}

// Failed, or missing from the cache of a daemon that runs offline: waiting longer changes nothing.
bool isFinalFailure(const protocol::EntryStatus& entry) {
    return entry.state == protocol::EntryState::Failed || entry.state == protocol::EntryState::Missing;
}

bool matchesRepo(const protocol::EntryStatus& entry, std::string_view name) {
    std::optional<std::string_view> type;
    for (auto [prefix, typeName] : {std::pair{std::string_view("models/"), std::string_view("model")},
                                    std::pair{std::string_view("datasets/"), std::string_view("dataset")},
                                    std::pair{std::string_view("spaces/"), std::string_view("space")}}) {
        if (name.substr(0, prefix.size()) == prefix) {
            type = typeName;
            name.remove_prefix(prefix.size());
            break;
        }
    }
    std::optional<std::string_view> revision;
    if (auto at = name.find('@'); at != std::string_view::npos) {
        revision = name.substr(at + 1);
        name = name.substr(0, at);
    }
    if (name != entry.repo) return false;
    if (type && *type != entry.type) return false;
    if (revision && *revision != entry.revision) return false;
    return true;
}

WaitState evaluateWait(const protocol::StatusResult& status, const std::vector<std::string>& repos) {
    WaitState state;
    if (repos.empty()) {
        for (const auto& entry : status.entries) {
            if (!entry.optional) state.watched.push_back(&entry);
        }
    } else {
        for (const auto& name : repos) {
            bool found = false;
            for (const auto& entry : status.entries) {
                if (!matchesRepo(entry, name)) continue;
                found = true;
                if (std::find(state.watched.begin(), state.watched.end(), &entry) == state.watched.end()) {
                    state.watched.push_back(&entry);
                }
            }
            if (!found) state.missing.push_back(name);
        }
    }
    bool failed = !state.missing.empty();
    bool done = true;
    for (const auto* entry : state.watched) {
        failed = failed || isFinalFailure(*entry);
        done = done && isDone(*entry);
    }
    state.verdict = failed ? WaitVerdict::Failed : (done ? WaitVerdict::Ready : WaitVerdict::Pending);
    return state;
}

std::string formatAgo(std::string_view isoTime, std::chrono::system_clock::time_point now) {
    if (isoTime.empty()) return "-";
    std::tm tm{};
    std::string text(isoTime);
    int consumed = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        consumed < 19) {
        return text;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const auto then = std::chrono::system_clock::from_time_t(::timegm(&tm));
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now - then).count();
    if (seconds < 0) return "just now";
    if (seconds < 60) return fmt::format("{}s ago", seconds);
    if (seconds < 3600) return fmt::format("{}m ago", seconds / 60);
    if (seconds < 86400) return fmt::format("{}h ago", seconds / 3600);
    return fmt::format("{}d ago", seconds / 86400);
}

std::string formatStatus(const protocol::StatusResult& status, std::chrono::system_clock::time_point now) {
    std::vector<std::array<std::string, 8>> rows;
    rows.push_back({"REPO", "STATE", "COMMIT", "FILES", "BYTES", "SPEED", "LAST ERROR", "LAST CHECKED"});
    for (const auto& entry : status.entries) {
        std::string repo = entry.display();
        if (entry.optional) repo += " (optional)";
        rows.push_back({repo, std::string(protocol::stateName(entry.state)), shortCommit(entry.commit),
                        fmt::format("{}/{}", entry.filesDone, entry.filesTotal),
                        util::humanBytes(entry.bytesDone) + " / " + util::humanBytes(entry.bytesTotal),
                        formatSpeed(entry.speed),
                        entry.error ? truncate(*entry.error, kErrorColumnWidth) : "-",
                        formatAgo(entry.lastChecked.value_or(""), now)});
    }
    std::array<std::size_t, 8> widths{};
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    }
    std::string text;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        text += line + '\n';
    }
    const auto& t = status.totals;
    text += protocol::summaryLine(status.entries) + fmt::format("; {} files of {}; {} of {}", t.filesDone,
                                                                t.filesTotal, util::humanBytes(t.bytesDone),
                                                                util::humanBytes(t.bytesTotal));
    if (t.speed >= 1) text += "; " + formatSpeed(t.speed);
    if (status.paused) text += "; paused (hfwarmctl resume to continue)";
    if (status.offline) text += "; offline";
    text += '\n';
    for (const auto& error : status.manifestErrors) text += "manifest error: " + error + '\n';
    for (const auto& notice : status.notices) text += "note: " + notice + '\n';
    for (const auto& entry : status.entries)
        for (const auto& note : entry.notes) text += "note: " + entry.display() + ": " + note + '\n';
    return text;
}

std::string formatProgress(const WaitState& state, bool bar) {
    std::uint64_t done = 0;
    std::uint64_t total = 0;
    double speed = 0;
    std::size_t ready = 0;
    std::vector<std::string> current;
    for (const auto* entry : state.watched) {
        done += entry->bytesDone;
        total += entry->bytesTotal;
        speed += entry->speed;
        ready += isDone(*entry) ? 1 : 0;
        for (const auto& file : entry->currentFiles) current.push_back(file);
    }
    const double fraction =
        total == 0 ? 0 : static_cast<double>(std::min(done, total)) / static_cast<double>(total);
    std::string eta = "-";
    if (speed >= 1 && total > done) eta = formatDuration(static_cast<double>(total - done) / speed);
    std::string text;
    if (bar) {
        constexpr int kWidth = 24;
        const int filled = static_cast<int>(fraction * kWidth);
        text += "[" + std::string(static_cast<std::size_t>(filled), '#') +
                std::string(static_cast<std::size_t>(kWidth - filled), '-') + "] ";
    }
    text +=
        fmt::format("{}/{} ready, {} of {} ({:.0f}%), {}, ETA {}", ready, state.watched.size(),
                    util::humanBytes(done), util::humanBytes(total), fraction * 100, formatSpeed(speed), eta);
    if (bar && !current.empty()) {
        std::string files = current.front();
        if (current.size() > 1) files += fmt::format(" +{} more", current.size() - 1);
        text += "  " + truncate(files, 40);
    }
    return text;
}

}  // namespace hfwarm::cli
