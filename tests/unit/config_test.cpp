#include "hfwarm/config/config.hpp"
#include "hfwarm/config/token.hpp"
#include "hfwarm/daemon/app.hpp"

#include "hfwarm_version.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

using namespace hfwarm::config;
namespace fs = std::filesystem;

namespace {

// A fresh folder under the system temp dir, removed at the end of the test.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "hfwarm-config-test-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    fs::path write(const fs::path& name, const std::string& text) const {
        fs::path file = path / name;
        fs::create_directories(file.parent_path());
        std::ofstream(file, std::ios::binary) << text;
        return file;
    }
};

LoadResult fromText(const std::string& text) {
    return applyJson(Config{}, text, FileContext{"test.json", {}, {}});
}

bool hasError(const std::vector<std::string>& errors, const std::string& text) {
    for (const auto& e : errors)
        if (e == text) return true;
    return false;
}

std::string allErrors(const std::vector<std::string>& errors) {
    std::string out;
    for (const auto& e : errors) out += e + "\n";
    return out;
}

bool contains(const std::vector<std::string>& errors, const std::string& part) {
    return allErrors(errors).find(part) != std::string::npos;
}

std::variant<hfwarm::daemon::Options, hfwarm::daemon::Exit> parseFlags(std::vector<std::string> args) {
    args.insert(args.begin(), "hfwarmd");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return hfwarm::daemon::parseCommandLine(static_cast<int>(argv.size()), argv.data());
}

std::variant<hfwarm::daemon::Launch, hfwarm::daemon::Exit> prepareWith(std::vector<std::string> args,
                                                                       const Environment& env) {
    args.insert(args.begin(), "hfwarmd");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return hfwarm::daemon::prepare(static_cast<int>(argv.size()), argv.data(), env);
}

// The repository's config/hfwarmd.json. Meson compiles this file with a path relative to the build
// root, and the test binary lives in <build root>/tests/unit, so both are found without relying
// on the working directory.
fs::path shippedConfig() {
    fs::path source(__FILE__);
    if (source.is_relative())
        source = fs::canonical("/proc/self/exe").parent_path().parent_path().parent_path() / source;
    return source.parent_path().parent_path().parent_path() / "config" / "hfwarmd.json";
}

}  // namespace

TEST_CASE("built-in defaults are the documented ones") {
    Config c;
    CHECK(c.manifests.empty());
    CHECK(c.cacheDir.empty());
    CHECK(c.endpoint == "https://huggingface.co");
    CHECK(c.socketMode == 0660u);
    CHECK(c.logLevel == "info");
    CHECK_FALSE(c.offline);
    CHECK(c.connections == 64);
    CHECK(c.connectionsPerHost == 48);
    CHECK(c.filesInFlight == 8);
    CHECK(c.bandwidth == 0u);
    CHECK(c.requestTimeout == 30);
    CHECK(c.stallTimeout == 30);
    CHECK(c.retry.maxAttempts == 6);
    CHECK(c.retry.baseDelay == 1);
    CHECK(c.retry.maxDelay == 60);
    CHECK(c.refreshInterval == 21600);
    CHECK(c.minFreeSpace == 1ull << 30);
    CHECK(c.segments == 8);
    CHECK(c.segmentMinSize == 8ull << 20);
    CHECK(c.maxClients == 256);
    CHECK(c.clientIdleTimeout == 300);
    CHECK(c.redis.empty());
}

TEST_CASE("default request rates stay below the Hub's anonymous limits over a 300 s window") {
    Limits l;
    // Worst case in one window: a full burst plus the refill.
    CHECK(l.api.burst + l.api.rate * 300 < 500);
    CHECK(l.resolvers.burst + l.resolvers.rate * 300 < 3000);
}

TEST_CASE("the shipped config/hfwarmd.json parses and equals the built-in defaults") {
    fs::path file = shippedConfig();
    INFO("shipped config: ", file.string());
    REQUIRE(fs::is_regular_file(file));
    auto result = applyFile(Config{}, file, Environment{});
    INFO(allErrors(result.errors));
    REQUIRE(result.ok());
    CHECK(result.config == Config{});
}

TEST_CASE("the shipped config/hfwarmd.json sets every key, so it documents every key") {
    // Starting from values unlike every default, loading the file must change every field back.
    Config odd;
    odd.manifests = {"x"};
    odd.cacheDir = "x";
    odd.endpoint = "http://x";
    odd.caFile = "x";
    odd.socket = "x";
    odd.socketMode = 0600;
    odd.logLevel = "off";
    odd.offline = true;
    odd.connections = odd.connectionsPerHost = odd.filesInFlight = odd.segments = odd.maxClients = 999;
    odd.segmentMinSize = odd.bandwidth = odd.minFreeSpace = 999;
    odd.requestTimeout = odd.stallTimeout = odd.refreshInterval = odd.clientIdleTimeout = 999;
    odd.retry = Retry{999, 999, 999};
    odd.limits = Limits{{999, 999}, {999, 999}};
    odd.redis = "redis://x";
    auto result = applyFile(odd, shippedConfig(), Environment{});
    REQUIRE(result.ok());
    CHECK(result.config == Config{});
}

TEST_CASE("a config file overrides the keys it names and keeps the others") {
    auto r = fromText(R"({
        "endpoint": "https://hub.example.com/",
        "offline": true,
        "connections": 4,
        "bandwidth": "10M",
        "min_free_space": 1000,
        "retry": {"max_attempts": 3},
        "limits": {"api": {"rate": 0.5}, "reserve": 0.25},
        "socket_mode": "0600",
        "log_level": "debug",
        "redis": "redis://cache:6379/0",
        "request_timeout": 2.5
    })");
    INFO(allErrors(r.errors));
    REQUIRE(r.ok());
    CHECK(r.config.endpoint == "https://hub.example.com");  // trailing '/' dropped, as huggingface_hub does
    CHECK(r.config.offline);
    CHECK(r.config.connections == 4);
    CHECK(r.config.bandwidth == 10u * 1024 * 1024);
    CHECK(r.config.minFreeSpace == 1000u);
    CHECK(r.config.retry.maxAttempts == 3);
    CHECK(r.config.retry.maxDelay == 60);  // untouched sibling
    CHECK(r.config.limits.api.rate == 0.5);
    CHECK(r.config.limits.api.burst == 20);
    CHECK(r.config.limits.resolvers == Limits{}.resolvers);
    CHECK(r.config.limits.reserve == 0.25);
    CHECK(Limits{}.reserve == 0.1);
    CHECK(r.config.socketMode == 0600u);
    CHECK(r.config.logLevel == "debug");
    CHECK(r.config.redis == "redis://cache:6379/0");
    CHECK(r.config.requestTimeout == 2.5);
    CHECK(r.config.connectionsPerHost == 48);
}

TEST_CASE("comments are allowed in the config file") {
    auto r = fromText(R"(// leading comment
    {
        /* block comment */
        "connections": 2 // trailing comment
    })");
    INFO(allErrors(r.errors));
    REQUIRE(r.ok());
    CHECK(r.config.connections == 2);
}

TEST_CASE("an unknown key is an error that names its path and the known keys") {
    auto r = fromText(R"({"limits": {"api": {"rat": 1}}})");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0] == "test.json: limits.api.rat: unknown key; known keys here: rate, burst");

    auto top = fromText(R"({"conections": 1})");
    REQUIRE(top.errors.size() == 1);
    CHECK(top.errors[0].starts_with(
        "test.json: conections: unknown key; known keys here: manifests, cache_dir,"));
}

TEST_CASE("a value of the wrong type is an error that names its path, the expected and the actual type") {
    auto r = fromText(R"({"limits": {"api": {"rate": "fast"}}})");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0] == "test.json: limits.api.rate: expected a number, got string");

    CHECK(fromText(R"({"offline": "yes"})").errors ==
          std::vector<std::string>{"test.json: offline: expected true or false, got string"});
    CHECK(fromText(R"({"connections": 1.5})").errors ==
          std::vector<std::string>{"test.json: connections: expected a whole number, got 1.5"});
    CHECK(fromText(R"({"retry": 3})").errors ==
          std::vector<std::string>{"test.json: retry: expected an object, got number"});
    CHECK(fromText(R"({"manifests": "a.txt"})").errors ==
          std::vector<std::string>{"test.json: manifests: expected an array of file names, got string"});
    CHECK(fromText(R"({"manifests": ["a.txt", 3]})").errors ==
          std::vector<std::string>{"test.json: manifests[1]: expected a string, got number"});
    CHECK(fromText(R"({"socket_mode": 660})").errors ==
          std::vector<std::string>{
              "test.json: socket_mode: expected an octal mode string such as \"0660\", got number"});
    CHECK(fromText("[1, 2]").errors ==
          std::vector<std::string>{"test.json: expected a JSON object at the top level, got array"});
}

TEST_CASE("out-of-range and malformed values are errors that say what is accepted") {
    CHECK(fromText(R"({"connections": 0})").errors ==
          std::vector<std::string>{"test.json: connections: must be between 1 and 1000000, got 0"});
    CHECK(fromText(R"({"stall_timeout": 0})").errors ==
          std::vector<std::string>{"test.json: stall_timeout: must be greater than 0, got 0"});
    CHECK(fromText(R"({"limits": {"resolvers": {"burst": 0.5}}})").errors ==
          std::vector<std::string>{"test.json: limits.resolvers.burst: must be at least 1, got 0.5"});
    CHECK(fromText(R"({"limits": {"reserve": 0.95}})").errors ==
          std::vector<std::string>{"test.json: limits.reserve: must be a fraction from 0 to 0.9 (0.1 keeps a "
                                   "tenth of each window for other tools), got 0.95"});
    CHECK(fromText(R"({"limits": {"reserve": -0.1}})").errors ==
          std::vector<std::string>{"test.json: limits.reserve: must be a fraction from 0 to 0.9 (0.1 keeps a "
                                   "tenth of each window for other tools), got -0.1"});
    CHECK(fromText(R"({"limits": {"reserve": "10%"}})").errors ==
          std::vector<std::string>{"test.json: limits.reserve: expected a number, got string"});
    CHECK(fromText(R"({"bandwidth": -1})").errors ==
          std::vector<std::string>{"test.json: bandwidth: must not be negative, got -1"});
    CHECK(fromText(R"({"bandwidth": "fast"})").errors ==
          std::vector<std::string>{"test.json: bandwidth: expected a byte count such as 4096, \"512K\", "
                                   "\"10M\" or \"1G\", got \"fast\""});
    CHECK(fromText(R"({"socket_mode": "0999"})").errors ==
          std::vector<std::string>{"test.json: socket_mode: expected an octal mode from \"0000\" to \"0777\" "
                                   "such as \"0660\", got \"0999\""});
    CHECK(fromText(R"({"log_level": "verbose"})").errors ==
          std::vector<std::string>{"test.json: log_level: expected one of trace, debug, info, warn, error, "
                                   "critical, off, got \"verbose\""});
    CHECK(fromText(R"({"endpoint": "ftp://hub"})").errors ==
          std::vector<std::string>{"test.json: endpoint: expected an http:// or https:// URL such as "
                                   "\"https://huggingface.co\", got \"ftp://hub\""});
    CHECK(fromText(R"({"redis": "cache:6379"})").errors ==
          std::vector<std::string>{
              "test.json: redis: expected a redis:// or rediss:// URL, or \"\" for local rate limits only"});
    // rediss:// (TLS to Redis) is refused when the config is read, never silently used in clear.
    auto tls = fromText(R"({"redis": "rediss://u:secret@cache:6380/0"})").errors;
    REQUIRE(tls.size() == 1);
    CHECK(tls[0].starts_with("test.json: redis: the redis URL (config key redis) uses rediss:// (TLS)"));
    CHECK(tls[0].find("secret") == std::string::npos);
    CHECK(fromText(R"({"redis": "redis://cache:6379/x"})").errors.size() == 1);
}

TEST_CASE("every error of a file is reported at once") {
    auto r = fromText(R"({
        "conections": 4,
        "offline": 1,
        "limits": {"api": {"rate": "x", "burst": 0}, "other": {}},
        "retry": {"max_delay": "long"}
    })");
    INFO(allErrors(r.errors));
    CHECK(r.errors.size() == 6);
    CHECK(hasError(r.errors, "test.json: offline: expected true or false, got number"));
    CHECK(hasError(r.errors, "test.json: limits.api.rate: expected a number, got string"));
    CHECK(hasError(r.errors, "test.json: limits.api.burst: must be at least 1, got 0"));
    CHECK(
        hasError(r.errors, "test.json: limits.other: unknown key; known keys here: api, resolvers, reserve"));
    CHECK(hasError(r.errors, "test.json: retry.max_delay: expected a number, got string"));
}

TEST_CASE("invalid JSON is one error with the line and column") {
    auto r = fromText("{\n  \"connections\": 4,\n}");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].starts_with("test.json: not valid JSON: parse error at line 3, column 1"));
}

TEST_CASE("byte counts accept numbers and K/M/G suffixes") {
    CHECK(fromText(R"({"bandwidth": 0})").config.bandwidth == 0u);
    CHECK(fromText(R"({"bandwidth": "512K"})").config.bandwidth == 512u * 1024);
    CHECK(fromText(R"({"bandwidth": "1.5M"})").config.bandwidth == 1536u * 1024);
    CHECK(fromText(R"({"segment_min_size": "1G"})").config.segmentMinSize == 1ull << 30);
    CHECK(fromText(R"({"min_free_space": "10GiB"})").config.minFreeSpace == 10ull << 30);
    CHECK(fromText(R"({"bandwidth": 1.5})").errors ==
          std::vector<std::string>{"test.json: bandwidth: expected a byte count (a whole number or a string "
                                   "such as \"10M\"), got 1.5"});
}

TEST_CASE("paths in a config file are relative to its folder, and ~/ is the home folder") {
    TempDir dir;
    auto file = dir.write("etc/hfwarmd.json",
                          R"({"manifests": ["m.txt", "/abs/m.txt", "~/m.txt"], "cache_dir": "cache"})");
    Environment env;
    env.variables = {{"HOME", "/home/u"}};
    auto r = applyFile(Config{}, file, env);
    INFO(allErrors(r.errors));
    REQUIRE(r.ok());
    CHECK(r.config.manifests ==
          std::vector<fs::path>{dir.path / "etc" / "m.txt", "/abs/m.txt", fs::path("/home/u") / "m.txt"});
    CHECK(r.config.cacheDir == dir.path / "etc" / "cache");
}

TEST_CASE("offline switches follow huggingface_hub: 1, ON, YES, TRUE in any case") {
    for (const char* value : {"1", "ON", "yes", "True", "TRUE"}) CHECK(isTrue(value));
    for (const char* value : {"0", "off", "no", "false", "", "2", "y"}) CHECK_FALSE(isTrue(value));

    for (const char* name : {"HF_HUB_OFFLINE", "HF_OFFLINE", "CI_OFFLINE_MODE", "TRANSFORMERS_OFFLINE"}) {
        Config c;
        Environment env;
        env.variables = {{name, "true"}};
        CHECK(applyEnvironment(c, env).empty());
        CHECK_MESSAGE(c.offline, name);
    }
    Config c;
    c.offline = true;
    Environment env;
    env.variables = {{"HF_HUB_OFFLINE", "0"}};
    applyEnvironment(c, env);
    CHECK(c.offline);  // a false value is "not asked for", it does not undo the config file
}

TEST_CASE("HF_ENDPOINT and HFWARM_SOCKET override the config file") {
    Config c;
    Environment env;
    env.variables = {{"HF_ENDPOINT", "http://127.0.0.1:8080/"}, {"HFWARM_SOCKET", "/tmp/x.sock"}};
    CHECK(applyEnvironment(c, env).empty());
    CHECK(c.endpoint == "http://127.0.0.1:8080");
    CHECK(c.socket == "/tmp/x.sock");

    Environment bad;
    bad.variables = {{"HF_ENDPOINT", "huggingface.co"}};
    CHECK(applyEnvironment(c, bad) ==
          std::vector<std::string>{"HF_ENDPOINT: expected an http:// or https:// URL, got "
                                   "\"huggingface.co\"; fix or unset the variable"});
    Environment empty;
    empty.variables = {{"HF_ENDPOINT", ""}};
    Config fresh;
    applyEnvironment(fresh, empty);
    CHECK(fresh.endpoint == "https://huggingface.co");  // empty counts as unset
}

TEST_CASE("the default socket path follows HFWARM_SOCKET, XDG_RUNTIME_DIR, then root or the user id") {
    Environment env;
    env.uid = 1000;
    env.variables = {{"HFWARM_SOCKET", "/s.sock"}, {"XDG_RUNTIME_DIR", "/run/user/1000"}};
    CHECK(defaultSocketPath(env) == "/s.sock");
    env.variables.erase("HFWARM_SOCKET");
    CHECK(defaultSocketPath(env) == "/run/user/1000/hfwarm/hfwarmd.sock");
    env.variables.clear();
    CHECK(defaultSocketPath(env) == "/tmp/hfwarm-1000/hfwarmd.sock");
    env.uid = 0;
    CHECK(defaultSocketPath(env) == "/run/hfwarm/hfwarmd.sock");
}

TEST_CASE("the config file is found in XDG_CONFIG_HOME, else ~/.config, else the system file") {
    TempDir dir;
    Environment env;
    env.variables = {{"XDG_CONFIG_HOME", (dir.path / "xdg").string()},
                     {"HOME", (dir.path / "home").string()}};
    CHECK_FALSE(findConfigFile(env));

    auto system = dir.write("etc/hfwarm/hfwarmd.json", "{}");
    env.systemConfigFile = system;
    CHECK(findConfigFile(env) == system);

    auto home = dir.write("home/.config/hfwarm/hfwarmd.json", "{}");
    CHECK(findConfigFile(env) == system);  // XDG_CONFIG_HOME is set, so ~/.config is not looked at
    env.variables.erase("XDG_CONFIG_HOME");
    CHECK(findConfigFile(env) == home);

    auto xdg = dir.write("xdg/hfwarm/hfwarmd.json", "{}");
    env.variables["XDG_CONFIG_HOME"] = (dir.path / "xdg").string();
    CHECK(findConfigFile(env) == xdg);
}

TEST_CASE("precedence: defaults < config file < environment < command line") {
    TempDir dir;
    auto file = dir.write("hfwarmd.json", R"({
        "endpoint": "https://file.example",
        "socket": "/file.sock",
        "connections": 3,
        "bandwidth": "1M",
        "log_level": "warn",
        "files_in_flight": 2
    })");
    Environment env;
    env.uid = 1000;

    Overrides none;
    none.configFile = file;
    auto fileOnly = resolve(none, env);
    INFO(allErrors(fileOnly.errors));
    REQUIRE(fileOnly.ok());
    CHECK(fileOnly.configFile == file);
    CHECK(fileOnly.config.endpoint == "https://file.example");
    CHECK(fileOnly.config.socket == "/file.sock");
    CHECK(fileOnly.config.connections == 3);
    CHECK(fileOnly.config.filesInFlight == 2);
    CHECK(fileOnly.config.segments == 8);  // default

    env.variables = {{"HF_ENDPOINT", "https://env.example"}, {"HFWARM_SOCKET", "/env.sock"}};
    auto withEnv = resolve(none, env);
    REQUIRE(withEnv.ok());
    CHECK(withEnv.config.endpoint == "https://env.example");
    CHECK(withEnv.config.socket == "/env.sock");
    CHECK(withEnv.config.connections == 3);

    Overrides flags = none;
    flags.endpoint = "https://flag.example/";
    flags.socket = "/flag.sock";
    flags.connections = 7;
    flags.bandwidth = 0;
    flags.logLevel = "error";
    flags.offline = true;
    flags.manifests = {"a.txt", "b.txt"};
    flags.cacheDir = "/cache";
    auto withFlags = resolve(flags, env);
    REQUIRE(withFlags.ok());
    CHECK(withFlags.config.endpoint == "https://flag.example");
    CHECK(withFlags.config.socket == "/flag.sock");
    CHECK(withFlags.config.connections == 7);
    CHECK(withFlags.config.bandwidth == 0u);
    CHECK(withFlags.config.logLevel == "error");
    CHECK(withFlags.config.offline);
    CHECK(withFlags.config.manifests == std::vector<fs::path>{"a.txt", "b.txt"});
    CHECK(withFlags.config.cacheDir == "/cache");
    CHECK(withFlags.config.filesInFlight == 2);  // still from the file
}

TEST_CASE("without any file or setting the socket path is filled in from the environment") {
    Environment env;
    env.uid = 1000;
    env.variables = {{"XDG_RUNTIME_DIR", "/run/user/1000"}};
    auto r = resolve(Overrides{}, env);
    REQUIRE(r.ok());
    CHECK(r.configFile.empty());
    CHECK(r.config.socket == "/run/user/1000/hfwarm/hfwarmd.sock");
    Config expected;
    expected.socket = r.config.socket;
    CHECK(r.config == expected);
}

TEST_CASE("an explicit --config that does not exist is an error, not a silent fallback") {
    TempDir dir;
    Environment env;
    env.variables = {{"XDG_CONFIG_HOME", dir.path.string()}};
    dir.write("hfwarm/hfwarmd.json", R"({"connections": 5})");
    Overrides o;
    o.configFile = dir.path / "missing.json";
    auto r = resolve(o, env);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0] ==
          "--config " + (dir.path / "missing.json").string() +
              ": no such file; give the path of an existing JSON config file, or leave --config out "
              "to use the defaults");
    CHECK(r.config.connections == 64);
}

TEST_CASE("errors of the file, the environment and the merged result are all reported") {
    TempDir dir;
    auto file = dir.write("c.json",
                          R"({"retry": {"base_delay": 10, "max_delay": 5}, "ca_file": "none.pem", "x": 1})");
    Environment env;
    env.variables = {{"HF_ENDPOINT", "nope"}};
    Overrides o;
    o.configFile = file;
    auto r = resolve(o, env);
    INFO(allErrors(r.errors));
    CHECK(r.errors.size() == 4);
    CHECK(hasError(r.errors,
                   file.string() +
                       ": x: unknown key; known keys here: manifests, cache_dir, endpoint, "
                       "ca_file, socket, socket_mode, log_level, offline, token_over_http, connections, "
                       "connections_per_host, files_in_flight, segments, segment_min_size, "
                       "bandwidth, request_timeout, stall_timeout, retry, limits, "
                       "refresh_interval, min_free_space, max_clients, client_idle_timeout, "
                       "redis"));
    CHECK(hasError(
        r.errors,
        "HF_ENDPOINT: expected an http:// or https:// URL, got \"nope\"; fix or unset the variable"));
    CHECK(hasError(r.errors, "retry.max_delay (5) must not be below retry.base_delay (10)"));
    CHECK(hasError(r.errors, "ca_file " + (dir.path / "none.pem").string() +
                                 ": no such file; give a PEM file of certificates to trust"));
}

TEST_CASE("flags are parsed into overrides") {
    auto parsed =
        parseFlags({"--config",    "c.json",      "--manifest", "a.txt",         "--manifest",
                    "b.txt",       "--cache-dir", "/c",         "--endpoint",    "http://127.0.0.1:9/",
                    "--ca-file",   "ca.pem",      "--socket",   "/s.sock",       "--once",
                    "--offline",   "--log-level", "debug",      "--connections", "3",
                    "--bandwidth", "2M",          "--reserve",  "0.25"});
    REQUIRE(std::holds_alternative<hfwarm::daemon::Options>(parsed));
    const auto& options = std::get<hfwarm::daemon::Options>(parsed);
    const auto& o = options.overrides;
    CHECK(options.once);
    CHECK(o.configFile == fs::path("c.json"));
    CHECK(o.manifests == std::vector<fs::path>{"a.txt", "b.txt"});
    CHECK(o.cacheDir == fs::path("/c"));
    CHECK(o.endpoint == "http://127.0.0.1:9/");
    CHECK(o.caFile == fs::path("ca.pem"));
    CHECK(o.socket == fs::path("/s.sock"));
    CHECK(o.offline);
    CHECK(o.logLevel == "debug");
    CHECK(o.connections == 3);
    CHECK(o.bandwidth == 2u * 1024 * 1024);
    CHECK(o.reserve == 0.25);

    auto bare = parseFlags({});
    REQUIRE(std::holds_alternative<hfwarm::daemon::Options>(bare));
    const auto& b = std::get<hfwarm::daemon::Options>(bare);
    CHECK_FALSE(b.once);
    CHECK_FALSE(b.overrides.configFile);
    CHECK_FALSE(b.overrides.bandwidth);
    CHECK_FALSE(b.overrides.reserve);
    CHECK_FALSE(b.overrides.offline);
}

TEST_CASE("bad flag values exit 2 with a message naming the flag and pointing to --help") {
    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    for (const auto& c : std::vector<Case>{
             {{"--bandwidth", "fast"},
              "hfwarmd: --bandwidth: 'fast' is not a rate: give bytes per second as a number with an "
              "optional K, M or "
              "G suffix (for example 10M), or 0 for unlimited\n"},
             {{"--log-level", "verbose"},
              "hfwarmd: --log-level: 'verbose' is not a log level: use one of trace, debug, info, warn, "
              "error, "
              "critical, off\n"},
             {{"--connections", "0"},
              "hfwarmd: --connections: '0' is not a connection count: give a whole number from 1 to "
              "1000000\n"},
             {{"--reserve", "0.95"},
              "hfwarmd: --reserve: '0.95' is not a reserve: give the share of each Hub window to leave "
              "unspent, from 0 to 0.9 (for example 0.1)\n"},
             {{"--endpoint", "huggingface.co"},
              "hfwarmd: --endpoint: 'huggingface.co' is not an http:// or https:// URL (for example "
              "https://huggingface.co)\n"},
         }) {
        auto parsed = parseFlags(c.args);
        REQUIRE(std::holds_alternative<hfwarm::daemon::Exit>(parsed));
        const auto& exit = std::get<hfwarm::daemon::Exit>(parsed);
        CHECK(exit.code == 2);
        CHECK(exit.out.empty());
        CHECK(exit.err == c.message + "Run 'hfwarmd --help' for the list of flags.\n");
    }

    for (const auto& args :
         std::vector<std::vector<std::string>>{{"--frobnicate"}, {"extra"}, {"--manifest"}}) {
        auto parsed = parseFlags(args);
        REQUIRE(std::holds_alternative<hfwarm::daemon::Exit>(parsed));
        const auto& exit = std::get<hfwarm::daemon::Exit>(parsed);
        CHECK(exit.code == 2);
        CHECK(exit.err.starts_with("hfwarmd: "));
        CHECK(exit.err.ends_with("Run 'hfwarmd --help' for the list of flags.\n"));
    }
}

TEST_CASE("durations above their maximum are config errors naming the key") {
    for (const std::string key : {"request_timeout", "stall_timeout", "client_idle_timeout"}) {
        CHECK(fromText("{\"" + key + "\": 3600}").ok());
        CHECK(fromText("{\"" + key + "\": 1e10}").errors ==
              std::vector<std::string>{"test.json: " + key +
                                       ": must be at most 3600 seconds (an hour), got 10000000000.0"});
        CHECK(contains(fromText("{\"" + key + "\": 1e308}").errors, key + ": must be at most 3600 seconds"));
        CHECK(contains(fromText("{\"" + key + "\": 3600.5}").errors, key + ": must be at most"));
    }
    CHECK(fromText(R"({"refresh_interval": 604800})").ok());
    CHECK(fromText(R"({"refresh_interval": 604801})").errors ==
          std::vector<std::string>{
              "test.json: refresh_interval: must be at most 604800 seconds (a week), got 604801"});
    CHECK(contains(fromText(R"({"refresh_interval": 1e308})").errors, "refresh_interval: must be at most"));
    CHECK(contains(fromText(R"({"retry": {"max_delay": 1e10}})").errors,
                   "retry.max_delay: must be at most 3600 seconds (an hour)"));
    CHECK(
        contains(fromText(R"({"retry": {"base_delay": 3601}})").errors, "retry.base_delay: must be at most"));
    CHECK(contains(fromText(R"({"stall_timeout": 0})").errors, "stall_timeout: must be greater than 0"));
}

TEST_CASE("an endpoint port outside 1..65535 is refused everywhere, with the reason") {
    for (const std::string url : {"https://127.0.0.1:0", "https://127.0.0.1:65536", "https://127.0.0.1:99999",
                                  "https://h:123456789012345678901"})
        CHECK_FALSE(normalizeEndpoint(url).has_value());
    CHECK(normalizeEndpoint("https://127.0.0.1:65535") == "https://127.0.0.1:65535");
    CHECK(normalizeEndpoint("http://127.0.0.1:1/") == "http://127.0.0.1:1");

    CHECK(
        fromText(R"({"endpoint": "https://127.0.0.1:99999"})").errors ==
        std::vector<std::string>{"test.json: endpoint: expected an http:// or https:// URL such as "
                                 "\"https://huggingface.co\", got \"https://127.0.0.1:99999\" (the port must "
                                 "be from 1 to 65535)"});
    Config c;
    Environment env;
    env.variables = {{"HF_ENDPOINT", "https://127.0.0.1:0"}};
    CHECK(applyEnvironment(c, env) ==
          std::vector<std::string>{
              "HF_ENDPOINT: expected an http:// or https:// URL, got \"https://127.0.0.1:0\" "
              "(the port must be from 1 to 65535); fix or unset the variable"});
    for (const std::string port : {"0", "65536", "99999"}) {
        auto parsed = parseFlags({"--endpoint", "https://127.0.0.1:" + port});
        REQUIRE(std::holds_alternative<hfwarm::daemon::Exit>(parsed));
        const auto& exit = std::get<hfwarm::daemon::Exit>(parsed);
        CHECK(exit.code == 2);
        CHECK(exit.err.find("(the port must be from 1 to 65535)") != std::string::npos);
    }
}

TEST_CASE("a password in the endpoint never appears in a message") {
    const std::string url = "https://alice:hunter2secret@hub.example.com";
    CHECK_FALSE(normalizeEndpoint(url).has_value());
    auto fromFile = fromText(R"({"endpoint": "https://alice:hunter2secret@hub.example.com"})");
    REQUIRE(fromFile.errors.size() == 1);
    CHECK(fromFile.errors[0].find("hunter2secret") == std::string::npos);
    CHECK(fromFile.errors[0].find("https://***@hub.example.com") != std::string::npos);

    Config c;
    Environment env;
    env.variables = {{"HF_ENDPOINT", url}};
    auto fromEnv = applyEnvironment(c, env);
    REQUIRE(fromEnv.size() == 1);
    CHECK(fromEnv[0].find("hunter2secret") == std::string::npos);
    CHECK(fromEnv[0].find("alice") == std::string::npos);

    Overrides flags;
    flags.endpoint = url;
    auto resolved = resolve(flags, Environment{});
    CHECK(allErrors(resolved.errors).find("hunter2secret") == std::string::npos);
    CHECK(contains(resolved.errors,
                   "--endpoint: expected an http:// or https:// URL, got \"https://***@hub.example.com\""));

    auto parsed = parseFlags({"--endpoint", url});
    REQUIRE(std::holds_alternative<hfwarm::daemon::Exit>(parsed));
    const auto& exit = std::get<hfwarm::daemon::Exit>(parsed);
    CHECK(exit.code == 2);
    CHECK(exit.err.find("hunter2secret") == std::string::npos);
    CHECK(exit.err.find("'https://***@hub.example.com'") != std::string::npos);
}

TEST_CASE(
    "a token with a plain http endpoint gives one warning naming HF_TOKEN, the endpoint and the opt-in") {
    Config c;
    c.endpoint = "http://cache.lan:8080";
    auto warning = plainHttpTokenWarning(c, true);
    REQUIRE(warning.has_value());
    CHECK(*warning ==
          "a token is set (HF_TOKEN or the token file) but the endpoint http://cache.lan:8080 is plain "
          "http: the token is not sent there, so gated and private repos will fail; use an https:// "
          "endpoint, or, for a trusted cache on your own network, set \"token_over_http\": true in the "
          "config file");
    CHECK_FALSE(plainHttpTokenWarning(c, false).has_value());
    CHECK(fromText(R"({"token_over_http": true})").config.tokenOverHttp);
    CHECK(contains(fromText(R"({"token_over_http": "yes"})").errors,
                   "token_over_http: expected true or false"));
    c.tokenOverHttp = true;
    CHECK_FALSE(plainHttpTokenWarning(c, true).has_value());
    c.tokenOverHttp = false;
    c.endpoint = "https://huggingface.co";
    CHECK_FALSE(plainHttpTokenWarning(c, true).has_value());
}

TEST_CASE("--version prints the name and version and exits 0") {
    auto parsed = parseFlags({"--version"});
    REQUIRE(std::holds_alternative<hfwarm::daemon::Exit>(parsed));
    const auto& exit = std::get<hfwarm::daemon::Exit>(parsed);
    CHECK(exit.code == 0);
    CHECK(exit.out == std::string("hfwarmd ") + HFWARM_VERSION + "\n");
    CHECK(exit.err.empty());
}

TEST_CASE("--help lists every flag and exits 0") {
    auto parsed = parseFlags({"--help"});
    REQUIRE(std::holds_alternative<hfwarm::daemon::Exit>(parsed));
    const auto& exit = std::get<hfwarm::daemon::Exit>(parsed);
    CHECK(exit.code == 0);
    for (const char* flag :
         {"--config", "--manifest", "--cache-dir", "--endpoint", "--ca-file", "--socket", "--once",
          "--offline", "--log-level", "--connections", "--bandwidth", "--version", "--help"})
        CHECK_MESSAGE(exit.out.find(flag) != std::string::npos, flag);
}

TEST_CASE("prepare merges flags, file and environment and loads the manifests") {
    TempDir dir;
    auto manifest = dir.write("m.txt", "gpt2\n");
    auto file = dir.write("c.json", R"({"connections": 5})");
    Environment env;
    env.variables = {{"HF_HUB_OFFLINE", "1"}};
    auto prepared = prepareWith({"--config", file.string(), "--manifest", manifest.string(), "--once"}, env);
    if (auto* exit = std::get_if<hfwarm::daemon::Exit>(&prepared)) FAIL(exit->err);
    const auto& launch = std::get<hfwarm::daemon::Launch>(prepared);
    CHECK(launch.once);
    CHECK(launch.config.offline);
    CHECK(launch.config.connections == 5);
    CHECK(launch.config.manifests == std::vector<fs::path>{manifest});
}

TEST_CASE("without a configured manifest, the user's ~/.config/hfwarm/manifest.txt is used when it exists") {
    TempDir dir;
    Environment env;
    env.variables = {{"XDG_CONFIG_HOME", dir.path.string()}};
    CHECK_FALSE(hfwarm::config::findDefaultManifest(env));
    fs::create_directories(dir.path / "hfwarm");
    auto manifest = dir.write("hfwarm/manifest.txt", "gpt2\n");
    CHECK(hfwarm::config::findDefaultManifest(env) == manifest);

    auto prepared = prepareWith({"--once", "--offline"}, env);
    if (auto* exit = std::get_if<hfwarm::daemon::Exit>(&prepared)) FAIL(exit->err);
    CHECK(std::get<hfwarm::daemon::Launch>(prepared).config.manifests == std::vector<fs::path>{manifest});

    auto explicitOne = dir.write("other.txt", "bert-base-uncased\n");
    auto chosen = prepareWith({"--once", "--offline", "--manifest", explicitOne.string()}, env);
    REQUIRE(std::holds_alternative<hfwarm::daemon::Launch>(chosen));
    CHECK(std::get<hfwarm::daemon::Launch>(chosen).config.manifests == std::vector<fs::path>{explicitOne});
}

TEST_CASE("prepare exits 2 on a config error, a missing manifest and a bad manifest") {
    TempDir dir;
    Environment env;
    auto badConfig = dir.write("c.json", R"({"connections": "many"})");
    auto exitOf = [&](std::vector<std::string> args) {
        auto prepared = prepareWith(std::move(args), env);
        REQUIRE(std::holds_alternative<hfwarm::daemon::Exit>(prepared));
        return std::get<hfwarm::daemon::Exit>(prepared);
    };

    auto config = exitOf({"--config", badConfig.string(), "--manifest", "m.txt"});
    CHECK(config.code == 2);
    CHECK(config.err ==
          "hfwarmd: " + badConfig.string() + ": connections: expected a whole number, got string\n");

    auto none = exitOf({"--once"});
    CHECK(none.code == 2);
    CHECK(none.err.find("no manifest to keep warm") != std::string::npos);

    auto missing = exitOf({"--manifest", (dir.path / "absent.txt").string()});
    CHECK(missing.code == 2);
    CHECK(missing.err.find((dir.path / "absent.txt").string()) != std::string::npos);

    auto bad = dir.write("bad.txt", "gpt2\norg/name frobnicate:x\n");
    auto badManifest = exitOf({"--manifest", bad.string(), "--once", "--offline"});
    CHECK(badManifest.code == 2);
    CHECK(badManifest.err.starts_with("hfwarmd: " + bad.string() + ":2:"));
}
