#include "hfwarm/daemon/app.hpp"

#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/util/log.hpp"
#include "hfwarm/util/units.hpp"

#include "hfwarm_version.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <iostream>
#include <sstream>

namespace hfwarm::daemon {

namespace {

constexpr int kUsageExit = 2;

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

CLI::Validator byteRate() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            if (util::parseByteSize(text)) return {};
            return fmt::format(
                "'{}' is not a rate: give bytes per second as a number with an optional K, M or G suffix "
                "(for example 10M), or 0 for unlimited",
                text);
        },
        "");
}

CLI::Validator logLevel() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            const auto& levels = config::logLevels();
            if (std::find(levels.begin(), levels.end(), text) != levels.end()) return {};
            return fmt::format("'{}' is not a log level: use one of {}", text, joined(levels));
        },
        "");
}

CLI::Validator endpointUrl() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            if (config::normalizeEndpoint(text)) return {};
            return fmt::format("'{}' is not an http:// or https:// URL (for example https://huggingface.co)",
                               text);
        },
        "");
}

// A whole number in [1, 1000000], the same range the config file accepts for "connections".
CLI::Validator connectionCount() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            int n = 0;
            auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
            if (ec == std::errc{} && end == text.data() + text.size() && n >= 1 && n <= 1'000'000) return {};
            return fmt::format("'{}' is not a connection count: give a whole number from 1 to 1000000", text);
        },
        "");
}

// A fraction in [0, 0.9], the range the config file accepts for "limits.reserve".
CLI::Validator reserveShare() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            double share = -1;
            auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), share);
            if (ec == std::errc{} && end == text.data() + text.size() && share >= 0 &&
                share <= config::kMaxReserve)
                return {};
            return fmt::format(
                "'{}' is not a reserve: give the share of each Hub window to leave unspent, "
                "from 0 to 0.9 (for example 0.1)",
                text);
        },
        "");
}

std::string failureMessage(const CLI::App*, const CLI::Error& e) {
    return fmt::format("hfwarmd: {}\nRun 'hfwarmd --help' for the list of flags.\n", e.what());
}

}  // namespace

std::variant<Options, Exit> parseCommandLine(int argc, const char* const* argv) {
    CLI::App app{"hfwarmd: keeps a Hugging Face model cache warm", "hfwarmd"};
    app.set_version_flag("--version", std::string("hfwarmd ") + HFWARM_VERSION, "Print the version and exit");
    app.failure_message(failureMessage);
    app.footer(
        "Settings are taken from, in rising order: built-in defaults, the config file (--config, else "
        "$XDG_CONFIG_HOME/hfwarm/hfwarmd.json, else /etc/hfwarm/hfwarmd.json), the environment (HF_ENDPOINT, "
        "HF_HUB_OFFLINE, HFWARM_SOCKET), and these flags.");

    std::string configFile, cacheDir, endpoint, caFile, socket, logLevelText, connections, bandwidth;
    double apiRate = 0, apiBurst = 0, resolverRate = 0, resolverBurst = 0, reserve = 0;
    std::vector<std::string> manifests;
    bool once = false;
    bool offline = false;

    auto* configOption =
        app.add_option("--config", configFile, "JSON config file (comments allowed)")->type_name("FILE");
    app.add_option("--manifest", manifests, "Manifest of the repos to keep warm; repeat for several")
        ->type_name("FILE");
    auto* cacheDirOption = app.add_option("--cache-dir", cacheDir,
                                          "Hugging Face hub cache (default: HF_HUB_CACHE, HF_HOME/hub, ...)")
                               ->type_name("DIR");
    auto* endpointOption =
        app.add_option("--endpoint", endpoint, "Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
            ->type_name("URL")
            ->check(endpointUrl());
    auto* caFileOption =
        app.add_option("--ca-file", caFile, "Extra certificates to trust, added to the system store")
            ->type_name("PEM");
    auto* socketOption = app.add_option("--socket", socket,
                                        "Control socket (default: HFWARM_SOCKET or "
                                        "$XDG_RUNTIME_DIR/hfwarm/hfwarmd.sock)")
                             ->type_name("PATH");
    app.add_flag("--once", once, "Download everything once, print a summary and exit (0 ready, 1 failed)");
    app.add_flag("--offline", offline, "Use no network: report what the cache holds");
    auto* logLevelOption =
        app.add_option("--log-level", logLevelText, "trace, debug, info, warn, error, critical or off")
            ->type_name("LEVEL")
            ->check(logLevel());
    auto* connectionsOption =
        app.add_option("--connections", connections, "Open connections, all hosts together")
            ->type_name("N")
            ->check(connectionCount());
    auto* bandwidthOption =
        app.add_option("--bandwidth", bandwidth,
                       "Bytes per second for all downloads (K/M/G suffixes, 0 = unlimited)")
            ->type_name("RATE")
            ->check(byteRate());

    auto* apiRateOption = app.add_option("--api-rate", apiRate, "/api/ requests per second (limits.api.rate)")
                              ->type_name("R")
                              ->check(CLI::PositiveNumber);
    auto* apiBurstOption =
        app.add_option("--api-burst", apiBurst, "/api/ requests at once (limits.api.burst)")
            ->type_name("N")
            ->check(CLI::NonNegativeNumber);
    auto* resolverRateOption = app.add_option("--resolver-rate", resolverRate,
                                              "/resolve/ requests per second (limits.resolvers.rate)")
                                   ->type_name("R")
                                   ->check(CLI::PositiveNumber);
    auto* resolverBurstOption = app.add_option("--resolver-burst", resolverBurst,
                                               "/resolve/ requests at once (limits.resolvers.burst)")
                                    ->type_name("N")
                                    ->check(CLI::NonNegativeNumber);
    auto* reserveOption =
        app.add_option("--reserve", reserve,
                       "Share of each announced Hub window left for other tools, 0 to 0.9 (limits.reserve)")
            ->type_name("F")
            ->check(reserveShare());

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        std::ostringstream out;
        std::ostringstream err;
        int code = app.exit(e, out, err);
        return Exit{code == 0 ? 0 : kUsageExit, out.str(), err.str()};
    }

    Options options;
    options.once = once;
    auto& o = options.overrides;
    if (configOption->count() > 0) o.configFile = configFile;
    for (const auto& m : manifests) o.manifests.emplace_back(m);
    if (cacheDirOption->count() > 0) o.cacheDir = cacheDir;
    if (endpointOption->count() > 0) o.endpoint = endpoint;
    if (caFileOption->count() > 0) o.caFile = caFile;
    if (socketOption->count() > 0) o.socket = socket;
    o.offline = offline;
    if (logLevelOption->count() > 0) o.logLevel = logLevelText;
    // The validators above accepted these, so the conversions cannot fail.
    if (connectionsOption->count() > 0) o.connections = std::stoi(connections);
    if (bandwidthOption->count() > 0) o.bandwidth = util::parseByteSize(bandwidth);
    if (apiRateOption->count() > 0) o.apiRate = apiRate;
    if (apiBurstOption->count() > 0) o.apiBurst = apiBurst;
    if (resolverRateOption->count() > 0) o.resolverRate = resolverRate;
    if (resolverBurstOption->count() > 0) o.resolverBurst = resolverBurst;
    if (reserveOption->count() > 0) o.reserve = reserve;
    return options;
}

std::variant<Launch, Exit> prepare(int argc, const char* const* argv, const config::Environment& env) {
    auto parsed = parseCommandLine(argc, argv);
    if (auto* exit = std::get_if<Exit>(&parsed)) return *exit;
    const auto& options = std::get<Options>(parsed);

    auto loaded = config::resolve(options.overrides, env);
    if (!loaded.ok()) {
        std::string err;
        for (const auto& e : loaded.errors) err += fmt::format("hfwarmd: {}\n", e);
        return Exit{kUsageExit, {}, err};
    }
    if (loaded.config.manifests.empty()) {
        if (auto fallback = config::findDefaultManifest(env)) loaded.config.manifests.push_back(*fallback);
    }
    if (loaded.config.manifests.empty()) {
        return Exit{
            kUsageExit,
            {},
            "hfwarmd: no manifest to keep warm: give --manifest FILE, list files under \"manifests\" in "
            "the config file, or create ~/.config/hfwarm/manifest.txt\n"};
    }
    auto manifests = manifest::loadAll(loaded.config.manifests);
    if (!manifests.ok()) {
        std::string err;
        for (const auto& d : manifests.errors) err += fmt::format("hfwarmd: {}\n", d.format());
        return Exit{kUsageExit, {}, err};
    }
    return Launch{std::move(loaded.config), options.once};
}

int run(int argc, char** argv) {
    auto prepared = prepare(argc, argv, config::Environment::current());
    if (auto* exit = std::get_if<Exit>(&prepared)) {
        std::cout << exit->out << std::flush;
        std::cerr << exit->err << std::flush;
        return exit->code;
    }
    const auto& launch = std::get<Launch>(prepared);
    // The level was checked with the config; setting it cannot fail here.
    util::setLogLevel(launch.config.logLevel);
    // A reload reads the flags, the config file and the environment again, as at start.
    Reconfigure reconfigure = [argc, argv]() { return prepare(argc, argv, config::Environment::current()); };
    return runWithConfig(launch.config, launch.once, reconfigure);
}

}  // namespace hfwarm::daemon
