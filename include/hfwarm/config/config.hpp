// hfwarmd's settings: built-in defaults < config file < environment < command line.
//
// The config file is JSON with comments (config/hfwarmd.json documents every key). Loading never
// throws on bad input: unknown keys, wrong types and out-of-range values are collected as errors
// that name the key path ("limits.api.rate: expected a number, got string"), all at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::config {

// A token bucket of one request class (DESIGN.md section 4).
struct BucketLimit {
    double rate = 0;   // requests per second
    double burst = 0;  // requests that may go at once after an idle period
    friend bool operator==(const BucketLimit&, const BucketLimit&) = default;
};

// The largest limits.reserve: hfwarm keeps at least a tenth of each window for itself.
inline constexpr double kMaxReserve = 0.9;

// Defaults stay below the Hub's anonymous budgets (500 api and 3000 resolver requests per 300 s,
// that is 1.67/s and 10/s) so a fresh install never meets a 429.
struct Limits {
    BucketLimit api{1.5, 20};
    BucketLimit resolvers{9, 50};
    // The share of each window's quota the Hub announces that is never spent, so that the user's own
    // tools on the same IP or token still get answers: 0 to 0.9.
    double reserve = 0.1;
    friend bool operator==(const Limits&, const Limits&) = default;
};

// Network errors, timeouts and 5xx: exponential backoff with full jitter.
struct Retry {
    int maxAttempts = 6;
    double baseDelay = 1;  // seconds
    double maxDelay = 60;  // seconds
    friend bool operator==(const Retry&, const Retry&) = default;
};

struct Config {
    // What to keep warm.
    std::vector<std::filesystem::path> manifests;
    // Empty: resolved later as huggingface_hub does (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, ~).
    std::filesystem::path cacheDir;
    std::string endpoint = "https://huggingface.co";  // no trailing '/'
    std::filesystem::path caFile;                     // extra trust anchors (PEM); empty: none

    // Local control socket. Empty only in the defaults and the file; resolve() fills in
    // defaultSocketPath() when nothing set it.
    std::filesystem::path socket;
    unsigned socketMode = 0660;
    std::string logLevel = "info";  // trace, debug, info, warn, error, critical, off
    bool offline = false;
    // Send the token to an http:// endpoint too (a trusted cache on one's own network); by default
    // it goes only over https.
    bool tokenOverHttp = false;

    // Concurrency.
    int connections = 64;                       // open connections, all hosts together
    int connectionsPerHost = 48;                // open connections to one host
    int filesInFlight = 8;                      // files being downloaded at once
    int segments = 8;                           // most parallel connections for one large file
    std::uint64_t segmentMinSize = 8ull << 20;  // files below this size use one connection

    std::uint64_t bandwidth = 0;  // bytes per second for all transfers together; 0: unlimited
    double requestTimeout = 30;   // seconds for connect, handshake, headers
    double stallTimeout = 30;     // seconds without a byte before a transfer is cut and resumed
    Retry retry;
    Limits limits;
    double refreshInterval = 21600;           // seconds between checks of a ready entry
    std::uint64_t minFreeSpace = 1ull << 30;  // bytes left free on the cache's file system

    // Control socket clients.
    int maxClients = 256;
    double clientIdleTimeout = 300;  // seconds before an idle, non-subscribed client is closed

    // Shared rate-limit buckets for a fleet (redis://[user:password@]host[:port][/db]); empty: local.
    std::string redis;

    friend bool operator==(const Config&, const Config&) = default;
};

// What the process inherits that changes the configuration. Injected so tests need no setenv,
// no root and no files outside their temp folder.
struct Environment {
    std::map<std::string, std::string, std::less<>> variables;
    unsigned uid = 0;  // effective user id; 0 (root) selects the system socket path
    // Read when the user has no config file; empty: none. current() sets /etc/hfwarm/hfwarmd.json.
    std::filesystem::path systemConfigFile;

    // The variable's value; an empty value counts as unset, as for huggingface_hub's HF_ENDPOINT.
    std::optional<std::string> get(std::string_view name) const;

    // The environment of this process.
    static Environment current();
};

// Settings given on the command line; each one set here wins over every other source.
struct Overrides {
    std::optional<std::filesystem::path> configFile;  // must exist when given
    std::vector<std::filesystem::path> manifests;     // when non-empty, replaces the file's list
    std::optional<std::filesystem::path> cacheDir;
    std::optional<std::string> endpoint;
    std::optional<std::filesystem::path> caFile;
    std::optional<std::filesystem::path> socket;
    bool offline = false;  // true forces offline; false leaves it to the file and environment
    std::optional<std::string> logLevel;
    std::optional<int> connections;
    std::optional<std::uint64_t> bandwidth;
    std::optional<double> apiRate;
    std::optional<double> apiBurst;
    std::optional<double> resolverRate;
    std::optional<double> resolverBurst;
    std::optional<double> reserve;
};

struct LoadResult {
    Config config;
    std::vector<std::string> errors;   // each names its source and key path
    std::filesystem::path configFile;  // the file that was read; empty when none was
    bool ok() const { return errors.empty(); }
};

// How paths inside a config file are read: "~/" is the home folder, relative paths are relative
// to the folder of the file (not to the daemon's working directory, which is / under systemd).
struct FileContext {
    std::string source;             // used in error messages, usually the file name
    std::filesystem::path baseDir;  // empty: relative paths stay relative
    std::optional<std::string> home;
};

// Applies config-file JSON text on top of `base`. Keys absent from the text keep base's values.
LoadResult applyJson(const Config& base, std::string_view text, const FileContext& context);

// Reads `file` and applies it on top of `base`; an unreadable file is one error.
LoadResult applyFile(const Config& base, const std::filesystem::path& file, const Environment& env);

// Applies HF_ENDPOINT, HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE / HF_OFFLINE / CI_OFFLINE_MODE and
// HFWARM_SOCKET; returns the errors (an HF_ENDPOINT that is not an http(s) URL).
std::vector<std::string> applyEnvironment(Config& config, const Environment& env);

// The config file read when --config is not given: $XDG_CONFIG_HOME/hfwarm/hfwarmd.json (else
// ~/.config/hfwarm/hfwarmd.json) if it exists, else env.systemConfigFile if it exists, else none.
std::optional<std::filesystem::path> findConfigFile(const Environment& env);

// The whole chain: defaults, then the config file (--config or findConfigFile()), then the
// environment, then `overrides`; then the checks that involve several keys, and the socket path
// filled in. Every error of every layer is returned.
LoadResult resolve(const Overrides& overrides, const Environment& env);

// The manifest a user service reads when no manifest is configured:
// $XDG_CONFIG_HOME/hfwarm/manifest.txt (else ~/.config/hfwarm/manifest.txt), if it exists.
std::optional<std::filesystem::path> findDefaultManifest(const Environment& env);

// The control socket both programs use when no --socket is given: HFWARM_SOCKET, else
// $XDG_RUNTIME_DIR/hfwarm/hfwarmd.sock, else /run/hfwarm/hfwarmd.sock for root (the system
// service), else /tmp/hfwarm-<uid>/hfwarmd.sock.
std::filesystem::path defaultSocketPath(const Environment& env);

// huggingface_hub's truth test for environment switches: 1, ON, YES, TRUE in any case.
bool isTrue(std::string_view value);

// The log levels accepted by log_level and --log-level, in order.
const std::vector<std::string>& logLevels();

// Checks an endpoint URL (http or https, a host, a port from 1 to 65535 if any, no userinfo, query
// or fragment) and returns it without a trailing '/'; nullopt when it is not one.
std::optional<std::string> normalizeEndpoint(std::string_view url);

// For a URL normalizeEndpoint refuses: " (the port must be from 1 to 65535)" or a note about
// userinfo when that is the reason, else "". Messages show the URL through http::maskUserinfo.
std::string endpointNote(std::string_view url);

}  // namespace hfwarm::config
