// Method names, parameters and result shapes of hfwarmd's socket (DESIGN.md section 5).
//
// to_json writes every field; from_json is tolerant, as a client of a newer or older daemon must
// be: a missing member keeps its default and a member of the wrong type is ignored. The fixed
// field names of DESIGN.md are the JSON names; more may be added, none renamed.
#pragma once

#include "hfwarm/protocol/jsonrpc.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::protocol {

inline constexpr int kProtocolVersion = 1;

namespace method {
inline constexpr std::string_view status = "status";
inline constexpr std::string_view lookup = "lookup";
inline constexpr std::string_view sync = "sync";
inline constexpr std::string_view promote = "promote";
inline constexpr std::string_view reload = "reload";
inline constexpr std::string_view pause = "pause";
inline constexpr std::string_view resume = "resume";
inline constexpr std::string_view verify = "verify";
inline constexpr std::string_view prune = "prune";
inline constexpr std::string_view metrics = "metrics";
inline constexpr std::string_view subscribe = "subscribe";
inline constexpr std::string_view version = "version";
inline constexpr std::string_view shutdown = "shutdown";
}  // namespace method

// Notification methods pushed to subscribers.
namespace notification {
// params: one EntryStatus, sent when an entry changes state or makes progress.
inline constexpr std::string_view entry = "entry";
// params: StatusTotals, sent with progress.
inline constexpr std::string_view totals = "totals";
}  // namespace notification

// The states of docs/protocol.md "States": one vocabulary for status, wait, notifications and --once.
enum class EntryState { Queued, Resolving, Downloading, Ready, Failed, Missing, Paused, Unknown };

// The form of EntryStatus::lastChecked: ISO 8601 UTC to the second, "2026-01-31T12:00:00Z".
std::string formatTimestamp(std::chrono::system_clock::time_point time);

// "queued", "resolving", ...; "unknown" is only what a client shows for a state it does not know.
// parseState also reads the names of protocol 1 daemons before the vocabulary was settled:
// "pending" is queued and "offline" (cached, not checked against the Hub) is ready.
std::string_view stateName(EntryState state);
EntryState parseState(std::string_view name);

struct EntryStatus {
    std::string repo;                   // "org/name" or a legacy "gpt2"
    std::string type = "model";         // "model", "dataset", "space"
    std::string revision = "main";      // as the manifest asks
    std::optional<std::string> commit;  // 40 hex once resolved
    EntryState state = EntryState::Queued;
    bool optional = false;
    std::uint64_t filesDone = 0;
    std::uint64_t filesTotal = 0;
    std::uint64_t bytesDone = 0;
    std::uint64_t bytesTotal = 0;
    std::optional<std::string> error;        // last error, for a person
    double speed = 0;                        // bytes per second, recent average
    std::optional<std::string> lastChecked;  // ISO 8601 UTC, "2026-01-31T12:00:00Z"
    std::vector<std::string> currentFiles;   // paths in flight
    std::vector<std::string> notes;          // optional files the Hub lacks, with their manifest lines

    // "org/name", "datasets/org/name", with "@rev" when the revision is not main.
    std::string display() const;
};

struct StatusTotals {
    std::uint64_t entries = 0;
    std::uint64_t ready = 0;
    std::uint64_t failed = 0;
    std::uint64_t filesDone = 0;
    std::uint64_t filesTotal = 0;
    std::uint64_t bytesDone = 0;
    std::uint64_t bytesTotal = 0;
    double speed = 0;
};

struct StatusResult {
    std::vector<EntryStatus> entries;
    StatusTotals totals;
    json limits = json::object();  // the rate limiter's view: buckets, pauses, bandwidth
    bool paused = false;
    bool offline = false;
    std::string cacheDir;
    std::vector<std::string> manifestErrors;  // last reload's diagnostics; the last good manifest runs
    std::vector<std::string> notices;         // one-line hints, e.g. hf-hub reading another cache root
};

struct StatusParams {
    std::optional<std::string> repo;
};

struct LookupParams {
    std::string repo;  // "org/name", "datasets/org/name"
    std::string file;
    std::optional<std::string> revision;
};

enum class LookupState { Cached, Absent, Unknown };
std::string_view lookupStateName(LookupState state);

struct LookupResult {
    LookupState state = LookupState::Unknown;
    std::optional<std::string> path;  // absolute path of the snapshot file when cached
};

struct VersionResult {
    std::string version;
    int protocol = kProtocolVersion;
};

struct SyncParams {
    std::optional<std::string> repo;  // all entries when absent
};

// `promote`: the entries named as EntryStatus::display() names them.
struct PromoteParams {
    std::vector<std::string> repos;
};

struct PruneParams {
    bool apply = false;
};

struct PruneItem {
    std::string path;
    std::uint64_t bytes = 0;
    std::string reason;  // "not in any manifest", "stale .incomplete", ...
};

struct PruneResult {
    bool applied = false;
    std::vector<PruneItem> items;
    std::uint64_t bytes = 0;
};

struct VerifyProblem {
    std::string repo;
    std::string path;
    std::string problem;
};

struct VerifyResult {
    std::uint64_t filesChecked = 0;
    std::uint64_t bytesChecked = 0;
    std::vector<VerifyProblem> problems;
};

// sync, reload, pause, resume, shutdown: an acknowledgement a person can read.
struct AckResult {
    std::string message;
};

struct MetricsResult {
    std::string text;  // Prometheus text exposition format 0.0.4
};

void to_json(json& j, const EntryStatus& v);
void from_json(const json& j, EntryStatus& v);
void to_json(json& j, const StatusTotals& v);
void from_json(const json& j, StatusTotals& v);
void to_json(json& j, const StatusResult& v);
void from_json(const json& j, StatusResult& v);
void to_json(json& j, const StatusParams& v);
void from_json(const json& j, StatusParams& v);
void to_json(json& j, const LookupParams& v);
void from_json(const json& j, LookupParams& v);
void to_json(json& j, const LookupResult& v);
void from_json(const json& j, LookupResult& v);
void to_json(json& j, const VersionResult& v);
void from_json(const json& j, VersionResult& v);
void to_json(json& j, const SyncParams& v);
void from_json(const json& j, SyncParams& v);
void to_json(json& j, const PromoteParams& v);
void from_json(const json& j, PromoteParams& v);
void to_json(json& j, const PruneParams& v);
void from_json(const json& j, PruneParams& v);
void to_json(json& j, const PruneItem& v);
void from_json(const json& j, PruneItem& v);
void to_json(json& j, const PruneResult& v);
void from_json(const json& j, PruneResult& v);
void to_json(json& j, const VerifyProblem& v);
void from_json(const json& j, VerifyProblem& v);
void to_json(json& j, const VerifyResult& v);
void from_json(const json& j, VerifyResult& v);
void to_json(json& j, const AckResult& v);
void from_json(const json& j, AckResult& v);
void to_json(json& j, const MetricsResult& v);
void from_json(const json& j, MetricsResult& v);

// Strict parameter checks for the daemon side: an error text naming the member and the expected
// type, to send as -32602 Invalid params. Unknown members are allowed.
std::optional<std::string> checkLookupParams(const json& params, LookupParams& out);
std::optional<std::string> checkStatusParams(const json& params, StatusParams& out);
std::optional<std::string> checkSyncParams(const json& params, SyncParams& out);
std::optional<std::string> checkPruneParams(const json& params, PruneParams& out);
std::optional<std::string> checkPromoteParams(const json& params, PromoteParams& out);

}  // namespace hfwarm::protocol
