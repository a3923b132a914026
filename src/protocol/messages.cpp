#include "hfwarm/protocol/messages.hpp"

#include <array>
#include <ctime>
#include <utility>

namespace hfwarm::protocol {

namespace {

// Tolerant readers: keep the default when the member is missing or of another type.
void read(const json& j, const char* key, std::string& out) {
    if (auto it = j.find(key); it != j.end() && it->is_string()) out = it->get<std::string>();
}
void read(const json& j, const char* key, std::optional<std::string>& out) {
    if (auto it = j.find(key); it != j.end() && it->is_string()) out = it->get<std::string>();
}
void read(const json& j, const char* key, bool& out) {
    if (auto it = j.find(key); it != j.end() && it->is_boolean()) out = it->get<bool>();
}
void read(const json& j, const char* key, int& out) {
    if (auto it = j.find(key); it != j.end() && it->is_number_integer()) out = it->get<int>();
}
void read(const json& j, const char* key, std::uint64_t& out) {
    if (auto it = j.find(key); it != j.end() && it->is_number_unsigned()) out = it->get<std::uint64_t>();
}
void read(const json& j, const char* key, double& out) {
    if (auto it = j.find(key); it != j.end() && it->is_number()) out = it->get<double>();
}
void read(const json& j, const char* key, std::vector<std::string>& out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_array()) return;
    out.clear();
    for (const auto& item : *it) {
        if (item.is_string()) out.push_back(item.get<std::string>());
    }
}
template <class T>
void readList(const json& j, const char* key, std::vector<T>& out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_array()) return;
    out.clear();
    for (const auto& item : *it) {
        if (!item.is_object()) continue;
        T value;
        from_json(item, value);
        out.push_back(std::move(value));
    }
}

json optionalString(const std::optional<std::string>& value) {
    return value ? json(*value) : json(nullptr);
}

constexpr std::array<std::string_view, 8> kStateNames = {"queued", "resolving", "downloading", "ready",
                                                         "failed", "missing",   "paused",      "unknown"};

// Strict checks share one shape: a member is either absent or of the expected JSON type.
std::optional<std::string> checkString(const json& params, const char* key, bool required,
                                       std::optional<std::string>& out) {
    auto it = params.find(key);
    if (it == params.end() || (!required && it->is_null())) {
        if (required) return std::string("invalid params: \"") + key + "\" is required (a string)";
        return std::nullopt;
    }
    if (!it->is_string()) return std::string("invalid params: \"") + key + "\" must be a string";
    if (it->get_ref<const std::string&>().empty()) {
        return std::string("invalid params: \"") + key + "\" must not be empty";
    }
    out = it->get<std::string>();
    return std::nullopt;
}

}  // namespace

std::string formatTimestamp(std::chrono::system_clock::time_point time) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

std::string_view stateName(EntryState state) {
    return kStateNames[static_cast<std::size_t>(state)];
}

EntryState parseState(std::string_view name) {
    for (std::size_t i = 0; i < kStateNames.size(); ++i) {
        if (kStateNames[i] == name) return static_cast<EntryState>(i);
    }
    if (name == "pending") return EntryState::Queued;
    if (name == "offline") return EntryState::Ready;
    return EntryState::Unknown;
}

std::string_view lookupStateName(LookupState state) {
    switch (state) {
        case LookupState::Cached:
            return "cached";
        case LookupState::Absent:
            return "absent";
        case LookupState::Unknown:
            break;
    }
    return "unknown";
}

std::string EntryStatus::display() const {
    std::string text;
    if (type == "dataset") text = "datasets/";
    if (type == "space") text = "spaces/";
    text += repo;
    if (revision != "main") text += "@" + revision;
    return text;
}

void to_json(json& j, const EntryStatus& v) {
    j = json{{"repo", v.repo},
             {"type", v.type},
             {"revision", v.revision},
             {"commit", optionalString(v.commit)},
             {"state", stateName(v.state)},
             {"optional", v.optional},
             {"files_done", v.filesDone},
             {"files_total", v.filesTotal},
             {"bytes_done", v.bytesDone},
             {"bytes_total", v.bytesTotal},
             {"error", optionalString(v.error)},
             {"speed", v.speed},
             {"last_checked", optionalString(v.lastChecked)},
             {"current_files", v.currentFiles},
             {"notes", v.notes}};
}

void from_json(const json& j, EntryStatus& v) {
    read(j, "repo", v.repo);
    read(j, "type", v.type);
    read(j, "revision", v.revision);
    read(j, "commit", v.commit);
    std::string state;
    read(j, "state", state);
    v.state = parseState(state);
    read(j, "optional", v.optional);
    read(j, "files_done", v.filesDone);
    read(j, "files_total", v.filesTotal);
    read(j, "bytes_done", v.bytesDone);
    read(j, "bytes_total", v.bytesTotal);
    read(j, "error", v.error);
    read(j, "speed", v.speed);
    read(j, "last_checked", v.lastChecked);
    read(j, "current_files", v.currentFiles);
    read(j, "notes", v.notes);
}

void to_json(json& j, const StatusTotals& v) {
    j = json{{"entries", v.entries},        {"ready", v.ready},
             {"failed", v.failed},          {"files_done", v.filesDone},
             {"files_total", v.filesTotal}, {"bytes_done", v.bytesDone},
             {"bytes_total", v.bytesTotal}, {"speed", v.speed}};
}

void from_json(const json& j, StatusTotals& v) {
    read(j, "entries", v.entries);
    read(j, "ready", v.ready);
    read(j, "failed", v.failed);
    read(j, "files_done", v.filesDone);
    read(j, "files_total", v.filesTotal);
    read(j, "bytes_done", v.bytesDone);
    read(j, "bytes_total", v.bytesTotal);
    read(j, "speed", v.speed);
}

void to_json(json& j, const StatusResult& v) {
    j = json{{"entries", v.entries},
             {"totals", v.totals},
             {"limits", v.limits.is_object() ? v.limits : json::object()},
             {"paused", v.paused},
             {"offline", v.offline},
             {"cache_dir", v.cacheDir},
             {"manifest_errors", v.manifestErrors},
             {"notices", v.notices}};
}

void from_json(const json& j, StatusResult& v) {
    readList(j, "entries", v.entries);
    if (auto it = j.find("totals"); it != j.end() && it->is_object()) from_json(*it, v.totals);
    if (auto it = j.find("limits"); it != j.end() && it->is_object()) v.limits = *it;
    read(j, "paused", v.paused);
    read(j, "offline", v.offline);
    read(j, "cache_dir", v.cacheDir);
    read(j, "manifest_errors", v.manifestErrors);
    read(j, "notices", v.notices);
}

void to_json(json& j, const StatusParams& v) {
    j = json::object();
    if (v.repo) j["repo"] = *v.repo;
}

void from_json(const json& j, StatusParams& v) {
    read(j, "repo", v.repo);
}

void to_json(json& j, const LookupParams& v) {
    j = json{{"repo", v.repo}, {"file", v.file}};
    if (v.revision) j["revision"] = *v.revision;
}

void from_json(const json& j, LookupParams& v) {
    read(j, "repo", v.repo);
    read(j, "file", v.file);
    read(j, "revision", v.revision);
}

void to_json(json& j, const LookupResult& v) {
    j = json{{"state", lookupStateName(v.state)}, {"path", optionalString(v.path)}};
}

void from_json(const json& j, LookupResult& v) {
    std::string state;
    read(j, "state", state);
    v.state = LookupState::Unknown;
    if (state == "cached") v.state = LookupState::Cached;
    if (state == "absent") v.state = LookupState::Absent;
    read(j, "path", v.path);
}

void to_json(json& j, const VersionResult& v) {
    j = json{{"version", v.version}, {"protocol", v.protocol}};
}

void from_json(const json& j, VersionResult& v) {
    read(j, "version", v.version);
    read(j, "protocol", v.protocol);
}

void to_json(json& j, const PromoteParams& v) {
    j = json{{"repos", v.repos}};
}
void from_json(const json& j, PromoteParams& v) {
    read(j, "repos", v.repos);
}

void to_json(json& j, const SyncParams& v) {
    j = json::object();
    if (v.repo) j["repo"] = *v.repo;
}

void from_json(const json& j, SyncParams& v) {
    read(j, "repo", v.repo);
}

void to_json(json& j, const PruneParams& v) {
    j = json{{"apply", v.apply}};
}

void from_json(const json& j, PruneParams& v) {
    read(j, "apply", v.apply);
}

void to_json(json& j, const PruneItem& v) {
    j = json{{"path", v.path}, {"bytes", v.bytes}, {"reason", v.reason}};
}

void from_json(const json& j, PruneItem& v) {
    read(j, "path", v.path);
    read(j, "bytes", v.bytes);
    read(j, "reason", v.reason);
}

void to_json(json& j, const PruneResult& v) {
    j = json{{"applied", v.applied}, {"items", v.items}, {"bytes", v.bytes}};
}

void from_json(const json& j, PruneResult& v) {
    read(j, "applied", v.applied);
    readList(j, "items", v.items);
    read(j, "bytes", v.bytes);
}

void to_json(json& j, const VerifyProblem& v) {
    j = json{{"repo", v.repo}, {"path", v.path}, {"problem", v.problem}};
}

void from_json(const json& j, VerifyProblem& v) {
    read(j, "repo", v.repo);
    read(j, "path", v.path);
    read(j, "problem", v.problem);
}

void to_json(json& j, const VerifyResult& v) {
    j = json{{"files_checked", v.filesChecked}, {"bytes_checked", v.bytesChecked}, {"problems", v.problems}};
}

void from_json(const json& j, VerifyResult& v) {
    read(j, "files_checked", v.filesChecked);
    read(j, "bytes_checked", v.bytesChecked);
    readList(j, "problems", v.problems);
}

void to_json(json& j, const AckResult& v) {
    j = json{{"message", v.message}};
}

void from_json(const json& j, AckResult& v) {
    read(j, "message", v.message);
}

void to_json(json& j, const MetricsResult& v) {
    j = json{{"text", v.text}};
}

void from_json(const json& j, MetricsResult& v) {
    read(j, "text", v.text);
}

std::optional<std::string> checkLookupParams(const json& params, LookupParams& out) {
    std::optional<std::string> repo;
    std::optional<std::string> file;
    if (auto error = checkString(params, "repo", true, repo)) return error;
    if (auto error = checkString(params, "file", true, file)) return error;
    if (auto error = checkString(params, "revision", false, out.revision)) return error;
    out.repo = std::move(*repo);
    out.file = std::move(*file);
    return std::nullopt;
}

std::optional<std::string> checkStatusParams(const json& params, StatusParams& out) {
    return checkString(params, "repo", false, out.repo);
}

std::optional<std::string> checkSyncParams(const json& params, SyncParams& out) {
    return checkString(params, "repo", false, out.repo);
}

std::optional<std::string> checkPromoteParams(const json& params, PromoteParams& out) {
    auto it = params.find("repos");
    const char* expected = "invalid params: \"repos\" is required (an array of one or more repo names)";
    if (it == params.end() || !it->is_array() || it->empty()) return std::string(expected);
    for (const auto& item : *it) {
        if (!item.is_string() || item.get_ref<const std::string&>().empty())
            return std::string(
                "invalid params: every item of \"repos\" must be a repo name (a non-empty string)");
        out.repos.push_back(item.get<std::string>());
    }
    return std::nullopt;
}

std::optional<std::string> checkPruneParams(const json& params, PruneParams& out) {
    auto it = params.find("apply");
    if (it == params.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) return std::string("invalid params: \"apply\" must be true or false");
    out.apply = it->get<bool>();
    return std::nullopt;
}

}  // namespace hfwarm::protocol
